"""`POST /api/auth/login`, `POST /api/auth/logout` and `GET /api/auth/me`."""

from __future__ import annotations

from flask import jsonify
from flask_login import current_user, login_required
from flask_wtf.csrf import generate_csrf
from werkzeug.wrappers import Response

from app.api import blueprint
from app.api import schemas as s
from app.api.openapi import operation
from app.auth.session import sign_in, sign_out
from app.auth.sign_in_throttle import sign_in_rate_limit
from app.domain.errors import DomainError
from app.http import json_object
from app.services.identity import principal_for


@blueprint.post("/auth/login")
@sign_in_rate_limit()
@operation(
    summary="Sign in; answers the CSRF token for later requests",
    body=s.LoginBody,
    body_required=True,
    body_reader=lambda: json_object('{"email": ..., "password": ...}'),
    responses={
        200: s.SignedIn,
        400: s.ErrorBody,
        401: s.ErrorBody,
        415: s.ErrorBody,
        429: s.ErrorBody,
    },
    auth="none",
)
def login(body: s.LoginBody) -> Response:
    """Sign in with `{email, password}`; answers `{csrf_token}` for later requests.

    Exempt from the CSRF check (the client has no token yet); requiring a JSON body
    stops cross-site forms, which cannot send one.
    """
    outcome = sign_in(body.email, body.password)
    if outcome.user is None:
        raise DomainError(401, outcome.message)
    return jsonify(
        csrf_token=generate_csrf(), user={"id": str(outcome.user.id), "email": outcome.user.email}
    )


@blueprint.post("/auth/logout")
@login_required
@operation(
    summary="Sign out of every session",
    responses={200: s.SignedOut, 400: s.ErrorBody, 401: s.ErrorBody},
)
def logout() -> Response:
    """Ends this session and every other session cookie of the user."""
    sign_out()
    return jsonify(status="signed out")


@blueprint.get("/auth/me")
@login_required
@operation(summary="Who the session belongs to", responses={200: s.Me, 401: s.ErrorBody})
def me() -> Response:
    """Who the session belongs to, their effective permissions, and a CSRF token."""
    principal = principal_for(current_user)
    return jsonify(
        id=str(principal.user_id),
        email=principal.email,
        permissions=sorted(principal.permissions),
        csrf_token=generate_csrf(),
    )
