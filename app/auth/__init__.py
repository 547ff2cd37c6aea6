"""Sign-in: the server-rendered login page, logout, and Flask-Login's wiring.

The JSON login lives in `app.api.auth`; both call `sign_in` so they share one session,
one lockout and one CSRF token.
"""

from __future__ import annotations

from flask import Flask, jsonify, redirect, request, url_for
from werkzeug.wrappers import Response

from app.auth.session import is_api_request, safe_next_url
from app.auth.views import blueprint
from app.db import db
from app.extensions import login_manager
from app.services.identity import load_active_user

__all__ = ["init_app", "safe_next_url"]


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.session_protection = "basic"
    login_manager.user_loader(lambda user_id: load_active_user(db.session(), user_id))
    login_manager.unauthorized_handler(_unauthorized)
    app.register_blueprint(blueprint)


def _unauthorized() -> Response:
    if is_api_request():
        response = jsonify(error="authentication required")
        response.status_code = 401
        return response
    next_path = request.full_path if request.query_string else request.path
    return redirect(url_for("auth.login", next=next_path))
