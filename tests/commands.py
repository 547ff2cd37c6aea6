"""Running the product's own commands as separate processes, as an operator does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.config import Settings

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def product_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a process of the product gets: these settings, plus `extra`."""
    env = os.environ.copy()
    env.pop("FLASK_APP", None)
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        SECRET_KEY=settings.secret_key or "",
        **extra,
    )
    return env


def flask_cli(
    settings: Settings, *args: str, stdin: str | None = None, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    """`flask --app app ARGS...` with these settings; never raises on a non-zero exit."""
    return subprocess.run(
        [str(BIN / "flask"), "--app", "app", *args],
        cwd=REPO,
        env=product_env(settings, **extra_env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
