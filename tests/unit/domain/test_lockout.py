from datetime import UTC, datetime, timedelta

from app.domain import lockout
from app.domain.lockout import LoginState, after_failure, after_success, is_locked

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def fail_times(
    n: int, state: LoginState | None = None, now: datetime = NOW, limit: int | None = 5
) -> LoginState:
    """`n` failures at `now`, counted against `limit` (None: the any-address one)."""
    limit = lockout.MAX_FAILED_LOGINS_ANY_ADDRESS if limit is None else limit
    state = state or LoginState()
    for _ in range(n):
        state = after_failure(state, now, limit=limit)
    return state


def test_four_failures_do_not_lock():
    state = fail_times(4)
    assert state.failed_count == 4
    assert not is_locked(state, NOW)
    assert lockout.refusal_message(state, NOW) == lockout.INVALID_CREDENTIALS


def test_the_fifth_failure_locks_for_fifteen_minutes():
    state = fail_times(5)
    assert is_locked(state, NOW)
    assert is_locked(state, NOW + timedelta(minutes=14, seconds=59))
    assert not is_locked(state, NOW + timedelta(minutes=15))
    assert lockout.refusal_message(state, NOW) == lockout.LOCKED_OUT


def test_failures_after_the_lock_ends_count_from_zero():
    later = NOW + lockout.LOCKOUT_PERIOD + timedelta(seconds=1)
    state = after_failure(fail_times(5), later)
    assert state.failed_count == 1
    assert not is_locked(state, later)


def test_a_failure_while_locked_neither_unlocks_nor_extends_the_lock():
    """Parallel sign-ins can record a failure after the lock was taken."""
    locked = fail_times(5)
    assert after_failure(locked, NOW + timedelta(minutes=1)) == locked


def test_failures_further_apart_than_the_window_do_not_add_up():
    """The same decay for every email: 4 failures, a 15-minute pause, 1 more is not a lock."""
    later = NOW + lockout.FAILURE_WINDOW
    state = after_failure(fail_times(4), later)
    assert (state.failed_count, is_locked(state, later)) == (1, False)
    just_inside = NOW + lockout.FAILURE_WINDOW - timedelta(seconds=1)
    assert is_locked(after_failure(fail_times(4), just_inside), just_inside)


def test_success_clears_the_count():
    assert after_success() == LoginState()


# --- Per address, per email, trusted devices ---------------------------------------------


def test_any_address_lock_takes_twenty_failures():
    """The per-email rule across addresses is the same rule at a higher threshold."""
    state = fail_times(lockout.MAX_FAILED_LOGINS_ANY_ADDRESS - 1, limit=None)
    assert not is_locked(state, NOW)
    state = after_failure(state, NOW, limit=lockout.MAX_FAILED_LOGINS_ANY_ADDRESS)
    assert is_locked(state, NOW)
    assert not is_locked(state, NOW + lockout.LOCKOUT_PERIOD)


def test_keys_tell_addresses_apart_but_not_the_same_email_twice():
    email_key = lockout.email_key("ivy@example.com")
    here = lockout.address_key("ivy@example.com", "192.0.2.1")
    there = lockout.address_key("ivy@example.com", "198.51.100.7")
    assert len({email_key, here, there}) == 3
    assert here == lockout.address_key("ivy@example.com", "192.0.2.1")
    assert all(len(key) == 64 for key in (email_key, here, there))  # the column's width
    # No email and address can be made to collide with another pair by moving the seam.
    assert lockout.address_key("a@b.c", "1.2.3.4") != lockout.address_key("a@b.c1", ".2.3.4")


LOCKED = fail_times(5)
FREE = LoginState()


def test_a_lock_from_one_address_does_not_refuse_the_same_email_elsewhere():
    assert lockout.is_refused(LOCKED, FREE, trusted=False, now=NOW)
    assert not lockout.is_refused(FREE, FREE, trusted=False, now=NOW)


def test_the_any_address_lock_refuses_untrusted_clients_only():
    any_address = fail_times(lockout.MAX_FAILED_LOGINS_ANY_ADDRESS, limit=None)
    assert lockout.is_refused(FREE, any_address, trusted=False, now=NOW)
    assert not lockout.is_refused(FREE, any_address, trusted=True, now=NOW)
    # A trusted device still has its own address's lock.
    assert lockout.is_refused(LOCKED, any_address, trusted=True, now=NOW)


def test_only_failures_the_address_lock_let_through_count_toward_the_any_address_lock():
    """One address alone cannot lock the email everywhere: once its own lock is on
    (parallel attempts that raced past it), its failures stop counting there too."""
    assert lockout.counts_everywhere(FREE, trusted=False, now=NOW)
    assert not lockout.counts_everywhere(LOCKED, trusted=False, now=NOW)
    assert not lockout.counts_everywhere(FREE, trusted=True, now=NOW)
