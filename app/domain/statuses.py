"""The lifecycle of a purchase execution."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    RUNNING = "running"
    COMPLETED = "completed"
    PARTIALLY_COMPLETED = "partially_completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.APPROVED, Status.CANCELLED, Status.EXPIRED, Status.FAILED}),
    Status.APPROVED: frozenset({Status.RUNNING, Status.FAILED}),
    Status.RUNNING: frozenset({Status.COMPLETED, Status.PARTIALLY_COMPLETED, Status.FAILED}),
}

TERMINAL = frozenset(status for status in Status if status not in TRANSITIONS)

# Rows the reaper watches: work was handed to the executor and may have been lost.
IN_FLIGHT = frozenset({Status.APPROVED, Status.RUNNING})


def can_transition(current: str, target: str) -> bool:
    """Whether an execution in `current` may move to `target`."""
    return Status(target) in TRANSITIONS.get(Status(current), frozenset())


def releases_suppressions(current: str, target: str) -> bool:
    """A row that leaves `pending` other than by approval (cancelled, expired, failed
    before anyone approved it) has nothing in flight: its suppressions go, so the
    recommendations may be bought again. An approved or running row keeps them."""
    return Status(current) is Status.PENDING and Status(target) is not Status.APPROVED


def sql_in_list() -> str:
    """The statuses as a SQL list, for the table's check constraint."""
    return ", ".join(f"'{status.value}'" for status in Status)
