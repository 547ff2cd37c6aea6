"""The per-address sign-in throttle: one budget of refused sign-ins per client address
(SIGN_IN_RATE_LIMIT), shared by the login page and `POST /api/auth/login`, whatever the
emails tried.

It sits in front of the lockouts (`app.domain.lockout`), which count per email: without
it, one address could try a few passwords against each of many emails and never lock
any. Only refusals use up the budget (any 4xx answer: a wrong password, a lockout, a
malformed body), so an office behind one address can sign in all morning. The count
lives in Flask-Limiter's store, the product's Redis (in memory per process while Redis
is unreachable).
"""

from __future__ import annotations

from flask_limiter import RouteLimit
from werkzeug.wrappers import Response

from app.config import get_settings
from app.extensions import limiter

TOO_MANY = "Too many failed sign-ins from your address: wait a minute, then try again."


def _refused(response: Response) -> bool:
    return 400 <= response.status_code < 500


def sign_in_rate_limit() -> RouteLimit:
    """Decorate a sign-in endpoint with the shared budget (POSTs only: looking at the
    login page is not signing in)."""
    return limiter.shared_limit(
        lambda: get_settings().sign_in_rate_limit,
        scope="sign-in",
        methods=["POST"],
        deduct_when=_refused,
        error_message=TOO_MANY,
    )
