"""The application factory. `flask --app app ...` finds `create_app` here."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from dotenv import load_dotenv
from flask import Flask
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from app import door, http, security_headers
from app.background import celery_init_app
from app.config import Settings
from app.db import db
from app.domain.errors import DomainError
from app.extensions import csrf, limiter, migrate
from app.instance import FOLDER_MODE, generated_secret, make_private
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

    app = Flask(__name__, instance_path=str(settings.instance_dir))
    make_private(settings.instance_dir, FOLDER_MODE)  # an older version made it 0755
    app.config.update(
        SECRET_KEY=settings.secret_key or instance_secret_key(settings.instance_dir),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.app_base_url.startswith("https://"),
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        # API clients keep one token for the whole session; it is bound to the session.
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=1024 * 1024,
        RATELIMIT_STORAGE_URI=settings.redis.limiter_storage()[0],
        RATELIMIT_STORAGE_OPTIONS=settings.redis.limiter_storage()[1],
    )
    app.extensions["settings"] = settings
    app.extensions["providers"] = providers or default_registry()

    if settings.trusted_proxies:
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    door.init_app(app)  # first: its hook runs before every other hook and view
    db.init_app(app, settings.database_url)
    # Flask-Migrate reads only `db.metadata`; its stubs name Flask-SQLAlchemy's class.
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=settings.is_sqlite)  # type: ignore[arg-type]
    csrf.init_app(app)
    limiter.init_app(app)
    security_headers.init_app(app, https=settings.app_base_url.startswith("https://"))
    # The error handlers, for every blueprint: JSON under /api, a page elsewhere.
    app.register_error_handler(DomainError, http.render_domain_error)
    app.register_error_handler(CSRFError, http.csrf_error)
    app.register_error_handler(HTTPException, http.http_error)

    from admin import init_admin
    from app import api, auth, cli, links, observability

    auth.init_app(app)
    api.init_app(app)
    links.init_app(app)
    observability.init_app(app)  # /healthz, /readyz, /metrics
    init_admin(app)
    cli.init_app(app)
    celery_init_app(app, settings)
    return app


def instance_secret_key(instance_dir: Path) -> str:
    """The embedded default: a random key kept in `instance/secret_key` (mode 0600),
    written once whatever the race between the processes starting together."""
    return generated_secret(
        instance_dir, "secret_key", lambda: secrets.token_urlsafe(48), variable="SECRET_KEY"
    )
