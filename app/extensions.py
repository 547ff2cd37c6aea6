"""Flask extensions, created unbound here and bound to an app in `create_app`."""

from __future__ import annotations

import redis
from flask import Flask, current_app
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect

login_manager = LoginManager()
csrf = CSRFProtect()
migrate = Migrate()


def init_redis(app: Flask, redis_url: str) -> None:
    """One connection pool per app; connections open lazily on first use."""
    app.extensions["redis"] = redis.Redis.from_url(
        redis_url, socket_connect_timeout=2, socket_timeout=5, decode_responses=True
    )


def get_redis() -> redis.Redis:
    return current_app.extensions["redis"]
