"""The instance folder: the embedded database, the generated secret key and Flower's
generated credentials. Password hashes, token hashes and keys live there, so the folder
is its owner's only (0700) and so is every file the product writes into it (0600),
whatever the umask and whatever an older version left behind.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path

from app.config import ConfigError, Settings

FOLDER_MODE = 0o700
FILE_MODE = 0o600
FLOWER_USER = "flower"

log = logging.getLogger(__name__)


def make_private(path: Path, mode: int) -> None:
    """Give `path` `mode` if it exists. A file someone else owns is theirs to protect:
    it is reported, not fatal."""
    try:
        os.chmod(path, mode)
    except FileNotFoundError:
        pass
    except PermissionError:
        log.warning("cannot make %s private (mode %o): it belongs to another user", path, mode)


def private_folder(path: Path) -> Path:
    """`path`, created (with its parents) or narrowed to mode 0700."""
    path.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    make_private(path, FOLDER_MODE)
    return path


def generated_secret(
    instance_dir: Path, name: str, make: Callable[[], str], *, variable: str
) -> str:
    """The secret kept in `instance_dir/name` (mode 0600), made by `make` the first time.

    Several processes start at once (gunicorn's workers, the worker, beat, Flower), so
    the file appears whole or not at all: it is written under another name and linked
    into place, and whoever loses the race reads the winner's secret. An empty file
    stops the process rather than using an empty secret; `variable` is the setting
    that replaces the file.
    """
    private_folder(instance_dir)
    path = instance_dir / name
    if not path.exists():
        fd, staged = tempfile.mkstemp(dir=instance_dir, prefix=f".{name}.")
        try:
            with os.fdopen(fd, "w") as handle:  # mkstemp creates it with mode 0600
                handle.write(make())
            os.link(staged, path)
            log.warning("%s is not set: generated it in %s", variable, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(staged)
    make_private(path, FILE_MODE)
    value = path.read_text().strip()
    if not value:
        raise ConfigError(f"{path} is empty: delete it to have a new one made, or set {variable}")
    return value


def flower_credentials(settings: Settings) -> list[str]:
    """Flower's `user:password` pairs: FLOWER_BASIC_AUTH, or one pair generated once
    into `instance/flower_credentials` (printed by scripts/run, never logged here)."""
    if settings.flower_basic_auth:
        return settings.flower_basic_auth.split(",")
    pair = generated_secret(
        settings.instance_dir,
        "flower_credentials",
        lambda: f"{FLOWER_USER}:{secrets.token_urlsafe(24)}",
        variable="FLOWER_BASIC_AUTH",
    )
    return [pair]
