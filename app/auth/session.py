"""The one sign-in path shared by the login page and `POST /api/auth/login`."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from flask import redirect, request, session, url_for
from flask_login import login_user, logout_user
from werkzeug.wrappers import Response

from app.db import unit_of_work, utcnow
from app.extensions import get_redis
from app.services.identity import LoginOutcome, UnknownEmailThrottle, authenticate


def sign_in(email: str, password: str) -> LoginOutcome:
    """Check the credentials; on success start a fresh session for the user.

    The old session is cleared first, so whatever an attacker planted in it before
    sign-in (a fixed session, a CSRF token) does not survive into the signed-in one.
    """
    with unit_of_work() as db_session:
        outcome = authenticate(
            db_session, UnknownEmailThrottle(get_redis()), email, password, utcnow()
        )
    if outcome.user is not None:
        session.clear()
        session["sid"] = secrets.token_urlsafe(24)
        login_user(outcome.user)
    return outcome


def sign_out() -> None:
    logout_user()
    session.clear()


def safe_next_url(target: str | None) -> str | None:
    """`target` if it stays on this site (a path, no scheme or host), else None."""
    if not target:
        return None
    target = target.strip()
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def redirect_to_login() -> Response:
    """Send the browser to the login page, to come back here once signed in."""
    here = request.full_path if request.query_string else request.path
    return redirect(url_for("auth.login", next=safe_next_url(here)))
