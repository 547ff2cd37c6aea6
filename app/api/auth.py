"""`POST /api/auth/login`, `POST /api/auth/logout` and `GET /api/auth/me`."""

from __future__ import annotations

from flask import jsonify
from flask_login import current_user, login_required
from flask_wtf.csrf import generate_csrf
from werkzeug.wrappers import Response

from app.api import blueprint
from app.auth.session import sign_in, sign_out
from app.domain.errors import DomainError
from app.http import json_object
from app.services.identity import principal_for


@blueprint.post("/auth/login")
def login() -> Response:
    """Sign in with `{email, password}`; answers `{csrf_token}` for later requests.

    Exempt from the CSRF check (the client has no token yet); requiring a JSON body
    stops cross-site forms, which cannot send one.
    """
    body = json_object('{"email": ..., "password": ...}')
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not isinstance(password, str) or not email or not password:
        raise DomainError(400, "email and password are required strings")
    if len(email) > 320 or len(password) > 1024:
        raise DomainError(400, "email or password too long")
    outcome = sign_in(email, password)
    if outcome.user is None:
        raise DomainError(401, outcome.message)
    return jsonify(
        csrf_token=generate_csrf(), user={"id": str(outcome.user.id), "email": outcome.user.email}
    )


@blueprint.post("/auth/logout")
@login_required
def logout() -> Response:
    """Ends this session and every other session cookie of the user."""
    sign_out()
    return jsonify(status="signed out")


@blueprint.get("/auth/me")
@login_required
def me() -> Response:
    """Who the session belongs to, their effective permissions, and a CSRF token."""
    principal = principal_for(current_user)
    return jsonify(
        id=str(principal.user_id),
        email=principal.email,
        permissions=sorted(principal.permissions),
        csrf_token=generate_csrf(),
    )
