from datetime import UTC, datetime, timedelta

from app.domain import lockout
from app.domain.lockout import LoginState, after_failure, after_success, is_locked

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def fail_times(n: int, state: LoginState | None = None, now: datetime = NOW) -> LoginState:
    state = state or LoginState()
    for _ in range(n):
        state = after_failure(state, now)
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
