"""Sign-in lockout, counted two ways so that nobody can lock a user out from afar.

- Per email *and client address*: 5 failed attempts in a row from one address lock that
  email from that address for 15 minutes. Someone guessing from one address is stopped,
  and the user signing in from anywhere else is not.
- Per email across every address, for clients without a device cookie: 20 failures in
  the window lock the email for 15 minutes for every client that has not signed in to
  it before, so a guess spread over many addresses is still slowed. A client with the
  email's device cookie (issued at a successful sign-in) is exempt from this one: the
  user's own browser keeps working while strangers are locked out. Only failures the
  per-address rule let through count here, so one address alone cannot reach 20.

(OWASP's "slow down online guessing attacks with device cookies".) A per-address rate
limit on the sign-in endpoints, whatever the email, sits in front of both.

Pure, and the same rules for every email, with an account or without: the service keeps
`LoginState` in one table for both (`app.models.LoginAttempts`), keyed by a hash, so
nothing in any answer, at any moment, tells whether an email has an account.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

MAX_FAILED_LOGINS = 5
MAX_FAILED_LOGINS_ANY_ADDRESS = 20
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


def email_key(normalized_email: str) -> str:
    """Where an email's failures from every address are counted."""
    return hashlib.sha256(normalized_email.encode()).hexdigest()


def address_key(normalized_email: str, address: str) -> str:
    """Where an email's failures from one client address are counted. The parts are
    length-prefixed, so no other (email, address) pair hashes the same input."""
    text = f"address:{len(normalized_email)}:{normalized_email}:{address}"
    return hashlib.sha256(text.encode()).hexdigest()


def is_locked(state: LoginState, now: datetime) -> bool:
    return state.locked_until is not None and now < state.locked_until


def after_failure(
    state: LoginState, now: datetime, *, limit: int = MAX_FAILED_LOGINS
) -> LoginState:
    """Count one failure. The `limit`th within the window locks and starts the count
    again; a failure while locked changes nothing (it neither unlocks nor extends the
    lock)."""
    if is_locked(state, now):
        return state
    recent = state.last_failed_at is not None and now - state.last_failed_at < FAILURE_WINDOW
    lock_ended = state.locked_until is not None
    failed = (state.failed_count if recent and not lock_ended else 0) + 1
    if failed >= limit:
        return LoginState(failed_count=0, last_failed_at=now, locked_until=now + LOCKOUT_PERIOD)
    return LoginState(failed_count=failed, last_failed_at=now, locked_until=None)


def is_refused(
    from_address: LoginState, any_address: LoginState, *, trusted: bool, now: datetime
) -> bool:
    """Whether a sign-in is refused before its password is looked at: this address's
    lock, or (without the email's device cookie) the lock across addresses."""
    return is_locked(from_address, now) or (not trusted and is_locked(any_address, now))


def counts_everywhere(from_address: LoginState, *, trusted: bool, now: datetime) -> bool:
    """Whether a failure also counts toward the lock across addresses: from a client
    without the device cookie, and let through by its address's own lock (`from_address`
    as it was before this failure)."""
    return not trusted and not is_locked(from_address, now)


def refusal_message(state: LoginState, now: datetime) -> str:
    """What a refused sign-in is told: the same words for every email."""
    return LOCKED_OUT if is_locked(state, now) else INVALID_CREDENTIALS


def after_success() -> LoginState:
    return LoginState()
