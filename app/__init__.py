"""The application factory. `flask --app app ...` finds `create_app` here."""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
from pathlib import Path

from dotenv import load_dotenv
from flask import Flask, current_app

from app import door, security_headers
from app.background import celery_init_app
from app.config import INSTANCE_DIR, ConfigError, Settings
from app.db import db
from app.extensions import csrf, limiter, migrate
from app.providers import ProviderRegistry, default_registry

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, providers: ProviderRegistry | None = None
) -> Flask:
    """Build the web app (panel, JSON API, CLI) bound to `settings`, with its Celery app.

    Without `settings`, reads the environment (and `.env`); a bad value raises
    `ConfigError` naming it. Without `providers`, purchases go to the simulator.
    """
    if settings is None:
        load_dotenv(override=False)
        settings = Settings.from_env()

    app = Flask(__name__, instance_path=str(INSTANCE_DIR))
    app.config.update(
        SECRET_KEY=settings.secret_key or instance_secret_key(INSTANCE_DIR),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.app_base_url.startswith("https://"),
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        # API clients keep one token for the whole session; it is bound to the session.
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=1024 * 1024,
        RATELIMIT_STORAGE_URI=settings.redis_url,
    )
    app.extensions["settings"] = settings
    app.extensions["providers"] = providers or default_registry()

    door.init_app(app)  # first: its hook runs before every other hook and view
    db.init_app(app, settings.database_url)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=settings.is_sqlite)
    csrf.init_app(app)
    limiter.init_app(app)
    security_headers.init_app(app, https=settings.app_base_url.startswith("https://"))

    from admin import init_admin
    from app import api, auth, cli, links

    auth.init_app(app)
    api.init_app(app)
    links.init_app(app)
    init_admin(app)
    cli.init_app(app)
    celery_init_app(app, settings)
    return app


def get_settings() -> Settings:
    """The settings of the app in the current context."""
    return current_app.extensions["settings"]


def instance_secret_key(instance_dir: Path) -> str:
    """The embedded default: a random key kept in `instance/secret_key` (mode 0600).

    Several processes start at once (gunicorn's workers, the worker, beat), so the file
    appears whole or not at all: it is written under another name and linked into
    place, and whoever loses the race reads the winner's key. An empty or unreadable
    file stops the process rather than signing sessions with an empty key.
    """
    path = instance_dir / "secret_key"
    if not path.exists():
        instance_dir.mkdir(parents=True, exist_ok=True)
        fd, staged = tempfile.mkstemp(dir=instance_dir, prefix=".secret_key.")
        try:
            with os.fdopen(fd, "w") as handle:  # mkstemp creates it with mode 0600
                handle.write(secrets.token_urlsafe(48))
            os.link(staged, path)
            log.warning("SECRET_KEY is not set: generated one in %s", path)
        except FileExistsError:
            pass
        finally:
            os.unlink(staged)
    key = path.read_text().strip()
    if not key:
        raise ConfigError(f"{path} is empty: delete it to have a new key made, or set SECRET_KEY")
    return key
