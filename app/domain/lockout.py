"""Sign-in lockout: 5 failed attempts in a row lock an email for 15 minutes.

Pure, and the one rule for every email, with an account or without: the service keeps
`LoginState` in one table for both (`app.models.LoginAttempts`), so nothing in any
answer, at any moment, tells whether an email has an account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

MAX_FAILED_LOGINS = 5
LOCKOUT_PERIOD = timedelta(minutes=15)
# Failures further apart than this do not add up: the count starts again.
FAILURE_WINDOW = LOCKOUT_PERIOD

INVALID_CREDENTIALS = "Invalid email or password."
LOCKED_OUT = (
    "Too many failed sign-ins: sign-in for this email is locked for "
    f"{int(LOCKOUT_PERIOD.total_seconds() // 60)} minutes. Try again later."
)


@dataclass(frozen=True)
class LoginState:
    failed_count: int = 0
    last_failed_at: datetime | None = None
    locked_until: datetime | None = None


def is_locked(state: LoginState, now: datetime) -> bool:
    return state.locked_until is not None and now < state.locked_until


def after_failure(state: LoginState, now: datetime) -> LoginState:
    """Count one failure. The fifth within the window locks the email and starts the
    count again; a failure while locked changes nothing (it neither unlocks nor
    extends the lock)."""
    if is_locked(state, now):
        return state
    recent = state.last_failed_at is not None and now - state.last_failed_at < FAILURE_WINDOW
    lock_ended = state.locked_until is not None
    failed = (state.failed_count if recent and not lock_ended else 0) + 1
    if failed >= MAX_FAILED_LOGINS:
        return LoginState(failed_count=0, last_failed_at=now, locked_until=now + LOCKOUT_PERIOD)
    return LoginState(failed_count=failed, last_failed_at=now, locked_until=None)


def refusal_message(state: LoginState, now: datetime) -> str:
    """What a refused sign-in is told: the same words for every email."""
    return LOCKED_OUT if is_locked(state, now) else INVALID_CREDENTIALS


def after_success() -> LoginState:
    return LoginState()
