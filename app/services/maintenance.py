"""Housekeeping run by Celery beat (SPEC section 5).

Each sweep is one conditional UPDATE ... RETURNING, so a row that changed state since
it was selected (approved a moment ago, say) is left alone, and two sweeps running at
once never both act on one row. The audit events go in the same transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.domain.retry import RequestState
from app.domain.statuses import IN_FLIGHT, Status
from app.models import PurchaseExecution, PurchaseSuppression, RetryRequest
from app.services import audit


def expire_pending(session: Session, *, now: datetime, ttl: timedelta) -> list[uuid.UUID]:
    """Move `pending` rows older than the approval TTL to `expired`.

    Their suppressions go with them: nothing is in flight any more, so the
    recommendations may be bought again.
    """
    cutoff = now - ttl
    expired = list(
        session.scalars(
            update(PurchaseExecution)
            .where(
                PurchaseExecution.status == Status.PENDING,
                PurchaseExecution.created_at < cutoff,
            )
            .values(status=Status.EXPIRED, approval_token_hash=None, updated_at=now)
            .returning(PurchaseExecution.execution_id)
        )
    )
    if expired:
        session.execute(
            delete(PurchaseSuppression).where(PurchaseSuppression.execution_id.in_(expired))
        )
    for execution_id in expired:
        audit.record(
            session,
            "execution.expired",
            execution_id=execution_id,
            details={"ttl_hours": ttl.total_seconds() / 3600},
        )
    return expired


def reap_stuck(session: Session, *, now: datetime, after: timedelta) -> list[uuid.UUID]:
    """Fail `approved`/`running` rows untouched for longer than `after`.

    The worker that held them is presumed dead. The row fails (and may be retried: the
    executor's idempotency keys make a re-drive safe) rather than sitting forever.
    """
    minutes = int(after.total_seconds() // 60)
    reaped = list(
        session.execute(
            update(PurchaseExecution)
            .where(
                PurchaseExecution.status.in_([status.value for status in IN_FLIGHT]),
                PurchaseExecution.updated_at < now - after,
            )
            .values(
                status=Status.FAILED,
                error=f"reaped: no progress for more than {minutes} minutes",
                updated_at=now,
            )
            .returning(PurchaseExecution.execution_id)
        ).scalars()
    )
    for execution_id in reaped:
        audit.record(
            session, "execution.reaped", execution_id=execution_id, details={"minutes": minutes}
        )
    return reaped


def unsent_approval_emails(session: Session, *, now: datetime, after: timedelta) -> list[uuid.UUID]:
    """Pending rows whose approval email is still unsent `after` their creation.

    Their email task was lost (a broker flushed, a worker killed before it queued the
    email). Queueing it again is safe: the email task sends once per execution.
    """
    return list(
        session.scalars(
            select(PurchaseExecution.execution_id)
            .where(
                PurchaseExecution.status == Status.PENDING,
                PurchaseExecution.notification_sent_at.is_(None),
                PurchaseExecution.created_at < now - after,
            )
            .order_by(PurchaseExecution.created_at)
            .limit(1000)
        )
    )


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
