"""Sign-in lockout: after 5 failed attempts an email is locked for 15 minutes.

Pure: the service stores `LoginState` (on the user row for real accounts, in Redis for
emails with no account, so the two answer alike and reveal nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

MAX_FAILED_LOGINS = 5
LOCKOUT_PERIOD = timedelta(minutes=15)

INVALID_CREDENTIALS = "Invalid email or password."
LOCKED_OUT = (
    "Too many failed sign-ins: sign-in for this email is locked for "
    f"{int(LOCKOUT_PERIOD.total_seconds() // 60)} minutes. Try again later."
)


@dataclass(frozen=True)
class LoginState:
    failed_count: int = 0
    locked_until: datetime | None = None


def is_locked(state: LoginState, now: datetime) -> bool:
    return state.locked_until is not None and now < state.locked_until


def after_failure(state: LoginState, now: datetime) -> LoginState:
    """Count one failure; the fifth in a row locks the email and restarts the count."""
    lock_ended = state.locked_until is not None and now >= state.locked_until
    previous = 0 if lock_ended else state.failed_count
    failed = previous + 1
    if failed >= MAX_FAILED_LOGINS:
        return LoginState(failed_count=0, locked_until=now + LOCKOUT_PERIOD)
    return LoginState(failed_count=failed, locked_until=None)


def after_success() -> LoginState:
    return LoginState()
