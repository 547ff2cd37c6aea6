"""Which failures are worth retrying later, and how long to wait."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError

# Database hiccups retried with backoff before a task gives up.
DATABASE_MAX_RETRIES = 5


def is_transient_database_error(exc: BaseException) -> bool:
    """A lost connection, a deadlock or a serialization failure: the same work may
    succeed if run again. Anything else (a constraint, a bug) will not."""
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def backoff_seconds(retries: int, *, base: float = 1.0, cap: float = 600.0) -> float:
    """base, 2*base, 4*base ... capped: the wait before retry number `retries + 1`."""
    return min(cap, base * 2**retries)
