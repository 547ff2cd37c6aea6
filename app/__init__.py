"""The application factory. `flask --app app ...` finds `create_app` here."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from dotenv import load_dotenv
from flask import Flask, current_app

from app.config import INSTANCE_DIR, Settings
from app.db import db
from app.extensions import csrf, init_redis, migrate

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Flask:
    """Build the web app (panel, JSON API, CLI) bound to `settings`.

    Without `settings`, reads the environment (and `.env`); a bad value raises
    `ConfigError` naming it.
    """
    if settings is None:
        load_dotenv(override=False)
        settings = Settings.from_env()

    app = Flask(__name__, instance_path=str(INSTANCE_DIR))
    app.config.update(
        SECRET_KEY=settings.secret_key or _instance_secret_key(INSTANCE_DIR),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.app_base_url.startswith("https://"),
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        # API clients keep one token for the whole session; it is bound to the session.
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_HEADERS=["X-CSRFToken", "X-CSRF-Token"],
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    app.extensions["settings"] = settings

    db.init_app(app, settings.database_url)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=settings.is_sqlite)
    init_redis(app, settings.redis_url)
    csrf.init_app(app)

    from admin import init_admin
    from app import api, auth, cli
    from tasks.worker import celery_init_app

    auth.init_app(app)
    api.init_app(app)
    init_admin(app)
    cli.init_app(app)
    celery_init_app(app)
    return app


def get_settings() -> Settings:
    """The settings of the app in the current context."""
    return current_app.extensions["settings"]


def _instance_secret_key(instance_dir: Path) -> str:
    """The embedded default: a random key kept in `instance/secret_key` (mode 0600).

    Set SECRET_KEY in production; this file is per machine.
    """
    path = instance_dir / "secret_key"
    if not path.exists():
        instance_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
        log.warning("SECRET_KEY is not set: generated one in %s", path)
    return path.read_text().strip()
