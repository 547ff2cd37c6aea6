"""The JSON API: errors are always JSON `{error, ...details}` with the right status (the
error handlers `create_app` registers from `app.http` answer in JSON under /api)."""

from __future__ import annotations

from flask import Blueprint, Flask, request
from flask_login import current_user
from flask_wtf.csrf import validate_csrf
from werkzeug.wrappers import Response
from wtforms import ValidationError

from app.api.reading import json_body, validate
from app.api.schemas import DecisionBody
from app.domain.errors import DomainError
from app.domain.rbac import Action, Principal, require
from app.extensions import csrf, login_manager
from app.services.identity import principal_for

blueprint = Blueprint("api", __name__, url_prefix="/api")

# Endpoints a client calls before it has a session (and so a CSRF token).
PUBLIC_ENDPOINTS = frozenset({"api.login"})
# Endpoints that take an approval email's token in the body instead of a session: with
# a token, neither a session nor a CSRF token is asked for (no ambient authority).
TOKEN_ENDPOINTS = frozenset({"api.approve_execution", "api.cancel_execution"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CSRF_HEADER = "X-CSRFToken"


def init_app(app: Flask) -> None:
    from app.api import auth, causes, controls, openapi, purchases  # noqa: F401  (registers the routes)

    csrf.exempt(blueprint)  # checked below, after authentication, from the header only
    app.register_blueprint(blueprint)


def viewer() -> Principal:
    """The signed-in user, refused with 403 unless they may view purchases."""
    principal = principal_for(current_user)
    require(principal, Action.VIEW)
    return principal


def body_token() -> str | None:
    """The email link's `token` from a JSON body, if the client sent one: the token, not
    a session, is then the authority (and the request counts against the link rate
    limit). 400 if it is there but the body does not fit `DecisionBody`; a body that is
    no JSON object at all is no token (the session path then answers for it)."""
    try:
        body = json_body(request.get_data(cache=True)) if request.is_json else None
    except DomainError:
        return None
    if not isinstance(body, dict) or "token" not in body:
        return None
    return validate(DecisionBody, body).token


@blueprint.before_request
def _authenticate_then_check_csrf() -> Response | None:
    """401 before 400: a request with no session is refused as unauthenticated (the
    first check of every write, docs/api.md) before its CSRF token is looked at.

    The token must come in the `X-CSRFToken` header, never a form field: a cross-site
    page cannot set a custom header without the browser asking this site first (CORS),
    and this site never agrees. That is also why no Referer is needed over https (the
    check Flask-WTF makes for forms, which `curl` clients do not send).
    """
    if request.method in _SAFE_METHODS or request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if request.endpoint in TOKEN_ENDPOINTS and body_token() is not None:
        return None
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    try:
        validate_csrf(request.headers.get(CSRF_HEADER))
    except ValidationError as exc:
        raise DomainError(400, f"CSRF check failed: {exc.args[0] if exc.args else exc}") from None
    return None
