"""Emails the product owes (the approval email, the outcome email once an execution
ends, and the reminder before a scheduled one starts): each is settled once, sent or
failed.

Pure rules for the outbox in `app.services.notifications`: a notification is claimed by
one task at a time (under a lease, `app.services.leases`), retried with backoff after
a transient failure, and handed to another task only when its lease lapsed (the worker
died mid-send) or its task was lost (still queued well after it was due).
"""

from __future__ import annotations

from enum import StrEnum

from app.domain.staleness import MAX_RETRY_DELAY
from app.domain.statuses import TRANSITIONS, Status


class NotificationKind(StrEnum):
    APPROVAL = "approval"  # to the approver, while the execution is pending
    OUTCOME = "outcome"  # to the creator, once the execution has ended
    REMINDER = "reminder"  # to the approvers, before a scheduled execution starts


class NotificationState(StrEnum):
    QUEUED = "queued"  # waiting for a task (from `due_at` on)
    SENDING = "sending"  # claimed by a task, which is talking to the SMTP server
    SENT = "sent"
    FAILED = "failed"  # will not be sent; `error` (and, for approval, the execution) says why
    SKIPPED = "skipped"  # no longer needed: the execution is not where the email is about


# A notification is only worth sending while its execution is in one of these: an
# approval email asks for a decision still open; an outcome email reports an end.
SENDABLE_WHILE: dict[NotificationKind, frozenset[Status]] = {
    NotificationKind.APPROVAL: frozenset({Status.PENDING}),
    NotificationKind.OUTCOME: TRANSITIONS[Status.RUNNING],  # the ends a run can reach
    # A reminder announces a start still ahead: pending (if approved in time) or approved.
    NotificationKind.REMINDER: frozenset({Status.PENDING, Status.APPROVED}),
}

SETTLED = frozenset({NotificationState.SENT, NotificationState.FAILED, NotificationState.SKIPPED})

MAX_WAIT_SECONDS = MAX_RETRY_DELAY.total_seconds()


def backoff_seconds(retries: int, *, base: float = 1.0, cap: float = MAX_WAIT_SECONDS) -> float:
    """base, 2*base, 4*base ... capped: the wait before retry number `retries + 1`."""
    return float(min(cap, base * 2.0**retries))


def gives_up(attempts: int, max_retries: int) -> bool:
    """After a transient failure: was that the last of `1 + max_retries` attempts?"""
    return attempts > max_retries
