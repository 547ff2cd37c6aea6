"""The one sign-in path shared by the login page and `POST /api/auth/login`."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from flask import redirect, request, session, url_for
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from app.auth import device
from app.db import unit_of_work, utcnow
from app.services.identity import LoginOutcome, authenticate, end_sessions


def sign_in(email: str, password: str) -> LoginOutcome:
    """Check the credentials from this client's address, with this browser's device
    cookie; on success start a fresh session for the user and renew the cookie.

    The old session is cleared first, so whatever an attacker planted in it before
    sign-in (a fixed session, a CSRF token) does not survive into the signed-in one.
    """
    outcome = authenticate(
        email,
        password,
        utcnow(),
        address=client_address(),
        trusted=device.is_trusted_for(email),
    )
    if outcome.user is not None:
        session.clear()
        session["sid"] = secrets.token_urlsafe(24)
        login_user(outcome.user)
        device.remember(outcome.user.email)
    return outcome


def client_address() -> str:
    """The address sign-in failures are counted under, and the rate limit's key: the
    peer's address (behind a proxy, what werkzeug's ProxyFix makes of it)."""
    return get_remote_address() or "unknown"


def sign_out() -> None:
    """End this session and every other session cookie of the signed-in user: the
    cookie lives in the browser, so only a new session version makes copies useless."""
    if current_user.is_authenticated:
        with unit_of_work() as db_session:
            end_sessions(db_session.merge(current_user._get_current_object()))
    logout_user()
    session.clear()


def safe_next_url(target: str | None) -> str | None:
    """`target` if it is a path on this site (no scheme, host or control characters),
    else None: it ends up in a Location header, and a CR or LF there is refused."""
    if not target:
        return None
    target = target.strip()
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def redirect_to_login() -> Response:
    """Send the browser to the login page, to come back here once signed in."""
    here = request.full_path if request.query_string else request.path
    return redirect(url_for("auth.login", next=safe_next_url(here)))
