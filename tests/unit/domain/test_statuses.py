import pytest

from app.domain.statuses import TERMINAL, Status, can_transition, releases_suppressions


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("pending", "approved"),
        ("pending", "cancelled"),
        ("pending", "expired"),
        ("pending", "failed"),
        ("approved", "running"),
        ("running", "completed"),
        ("running", "partially_completed"),
        ("running", "failed"),
    ],
)
def test_allowed_transitions(current, target):
    assert can_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("failed", "pending"),
        ("failed", "approved"),
        ("completed", "failed"),
        ("cancelled", "approved"),
        ("approved", "cancelled"),
        ("pending", "running"),
        ("expired", "pending"),
    ],
)
def test_refused_transitions(current, target):
    assert not can_transition(current, target)


def test_failed_is_terminal_history():
    assert Status.FAILED in TERMINAL
    assert TERMINAL == {
        Status.COMPLETED,
        Status.PARTIALLY_COMPLETED,
        Status.FAILED,
        Status.CANCELLED,
        Status.EXPIRED,
    }


@pytest.mark.parametrize(
    ("current", "target", "releases"),
    [
        ("pending", "cancelled", True),
        ("pending", "expired", True),
        ("pending", "failed", True),  # the approval email could not be sent
        ("pending", "approved", False),  # in flight: the suppressions hold
        ("running", "failed", False),  # reaped: a worker may still be buying
        ("approved", "failed", False),
    ],
)
def test_a_row_leaving_pending_unapproved_releases_its_suppressions(current, target, releases):
    assert releases_suppressions(current, target) is releases
