"""Sign-in: the server-rendered login page, logout, and Flask-Login's wiring.

The JSON login lives in `app.api.auth`; both call `sign_in` so they share one session,
one lockout and one CSRF token.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.wrappers import Response

from app.auth.session import redirect_to_login
from app.auth.views import blueprint
from app.db import db
from app.domain.errors import DomainError
from app.extensions import login_manager
from app.http import is_api_request, render_domain_error
from app.services.identity import load_session_user


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.session_protection = "basic"
    login_manager.user_loader(lambda session_id: load_session_user(db.session(), session_id))
    login_manager.unauthorized_handler(_unauthorized)
    app.register_blueprint(blueprint)


def _unauthorized() -> Response:
    if is_api_request():
        return render_domain_error(DomainError(401, "authentication required"))
    return redirect_to_login()
