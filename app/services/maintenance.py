"""Housekeeping run by Celery beat (SPEC section 5).

Each sweep is a conditional UPDATE ... RETURNING (`transitions.move` for statuses), so a
row that changed since it was selected (approved a moment ago, say) is left alone, and
two sweeps running at once never both act on one row. The audit events go in the same
transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from app.domain.lockout import FAILURE_WINDOW
from app.domain.outbox import NotificationKind
from app.domain.retry import RequestState
from app.domain.statuses import IN_FLIGHT, Status
from app.models import LoginAttempts, PurchaseExecution, RetryRequest
from app.services import notifications, transitions


def expire_pending(session: Session, *, now: datetime, ttl: timedelta) -> list[uuid.UUID]:
    """Move `pending` rows older than the approval TTL to `expired` (their suppressions
    go with them: nothing is in flight any more)."""
    return transitions.move(
        session,
        PurchaseExecution.created_at < now - ttl,
        sources={Status.PENDING},
        target=Status.EXPIRED,
        now=now,
        action="execution.expired",
        details={"ttl_hours": ttl.total_seconds() / 3600},
        values={"approval_token_hash": None},
    )


def reap_stuck(session: Session, *, now: datetime, after: timedelta) -> list[uuid.UUID]:
    """Fail `approved`/`running` rows untouched for longer than `after`.

    The worker that held them is presumed dead. The row fails (and may be retried: the
    executor's idempotency keys make a re-drive safe) rather than sitting forever.
    """
    minutes = int(after.total_seconds() // 60)
    reason = f"reaped: no progress for more than {minutes} minutes"
    return transitions.move(
        session,
        PurchaseExecution.updated_at < now - after,
        sources=IN_FLIGHT,
        target=Status.FAILED,
        now=now,
        action="execution.reaped",
        details={"minutes": minutes},
        values={"error": reason},
    )


def lost_emails(
    session: Session, *, now: datetime, after: timedelta
) -> list[tuple[NotificationKind, uuid.UUID]]:
    """Emails (kind, execution) with no task working on them: the approval email of
    pending rows older than `after` that never had one on record (inserted by hand),
    now recorded, and every email whose task was lost."""
    owed = notifications.owe_missing_approval_emails(session, now=now, after=after)
    lost = notifications.lost_emails(session, now=now)
    return [(NotificationKind.APPROVAL, execution_id) for execution_id in owed] + lost


def stalled_retry_requests(
    session: Session, *, now: datetime, after: timedelta
) -> list[RetryRequest]:
    """Retry requests still queued `after` their last touch: their task never reached a
    worker (the broker was down when the web layer queued it, say). Queueing them again
    is safe: the task settles a request once."""
    return list(
        session.scalars(
            select(RetryRequest)
            .where(
                RetryRequest.state == RequestState.QUEUED.value,
                RetryRequest.updated_at < now - after,
            )
            .order_by(RetryRequest.created_at)
            .limit(1000)
        )
    )


def forget_old_sign_in_failures(session: Session, *, now: datetime) -> int:
    """Drop failure counts that no longer count (past the window, no lock in force)."""
    result = session.execute(
        delete(LoginAttempts).where(
            or_(
                LoginAttempts.last_failed_at.is_(None),
                LoginAttempts.last_failed_at < now - FAILURE_WINDOW,
            ),
            or_(LoginAttempts.locked_until.is_(None), LoginAttempts.locked_until <= now),
        )
    )
    return result.rowcount or 0


def unstarted_executions(session: Session, *, now: datetime, after: timedelta) -> list[uuid.UUID]:
    """Approved rows the executor has not started `after` their approval: their task
    never reached a worker (the broker was down when the approval queued it, say).
    Queueing them again is safe: the executor starts a row once (`approved` →
    `running` is a conditional move)."""
    return list(
        session.scalars(
            select(PurchaseExecution.execution_id)
            .where(
                PurchaseExecution.status == Status.APPROVED.value,
                PurchaseExecution.updated_at < now - after,
            )
            .order_by(PurchaseExecution.updated_at)
            .limit(1000)
        )
    )
