"""The device cookie: proof that this browser has signed in to an email before.

Issued at every successful sign-in, it exempts its holder from the lockout across
addresses (`app.domain.lockout`), so a user's own browser keeps working while a guess
spread over many addresses locks strangers out. It names the email's hash (the key the
lockout counts under, not the email itself) and a random id, signed with the app's
SECRET_KEY: it cannot be forged or moved to another email, and it grants nothing but
that exemption (the per-address lockout and the password still apply).
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from flask import after_this_request, current_app, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from app.domain import lockout
from app.models import normalize_email

COOKIE = "sign_in_device"
LIFETIME = timedelta(days=365)
_SALT = "sign-in-device"


def _serializer() -> URLSafeTimedSerializer:
    secret = current_app.secret_key
    if secret is None:
        raise RuntimeError("SECRET_KEY is not set: sign-in device cookies cannot be signed")
    return URLSafeTimedSerializer(secret, salt=_SALT)


def _email_hash(email: str) -> str:
    return lockout.email_key(normalize_email(email))


def is_trusted_for(email: str) -> bool:
    """Whether this request carries a valid, unexpired device cookie for `email`."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return False
    try:
        claims = _serializer().loads(raw, max_age=int(LIFETIME.total_seconds()))
    except BadSignature:  # includes an expired one
        return False
    return isinstance(claims, dict) and claims.get("email") == _email_hash(email)


def remember(email: str) -> None:
    """Give this browser the device cookie for `email` with the response being made."""
    value = _serializer().dumps({"email": _email_hash(email), "device": secrets.token_urlsafe(16)})

    @after_this_request
    def _set(response: Response) -> Response:
        response.set_cookie(
            COOKIE,
            value,
            max_age=int(LIFETIME.total_seconds()),
            httponly=True,
            samesite="Lax",
            secure=bool(current_app.config["SESSION_COOKIE_SECURE"]),
        )
        return response
