"""Housekeeping run by Celery beat.

Each sweep is a conditional UPDATE ... RETURNING (`transitions.move` for statuses), so a
row that changed since it was selected (approved a moment ago, say) is left alone, and
two sweeps running at once never both act on one row. The audit events go in the same
transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session

from app.db import rowcount
from app.domain.lockout import FAILURE_WINDOW
from app.domain.outbox import NotificationKind
from app.domain.retry import RequestState
from app.domain.staleness import UNOWED_AFTER, UNSTARTED_AFTER
from app.domain.statuses import IN_FLIGHT, Status
from app.models import LoginAttempts, PurchaseExecution, RetryBatchItem
from app.services import executor, leases, notifications, schedules, transitions


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
    """Fail `approved`/`running` rows untouched for longer than `after` that no live
    lease covers (a heartbeat keeps a long provider call's row alive).

    The worker that held them is presumed dead. The row fails (and may be retried: the
    executor's idempotency keys make a re-drive safe) rather than sitting forever.
    """
    minutes = int(after.total_seconds() // 60)
    reason = f"reaped: no progress for more than {minutes} minutes"
    cutoff = now - after
    # An approved row that waits (its time, its plan, the freeze) is not stuck, and a
    # scheduled one's clock starts at its time.
    stuck = and_(
        PurchaseExecution.updated_at < cutoff,
        leases.lapsed(PurchaseExecution, now),
        or_(
            PurchaseExecution.status == Status.RUNNING.value,
            and_(
                ~schedules.waiting(now),
                or_(
                    PurchaseExecution.scheduled_for.is_(None),
                    PurchaseExecution.scheduled_for < cutoff,
                ),
            ),
        ),
    )
    return transitions.move(
        session,
        stuck,
        sources=IN_FLIGHT,
        target=Status.FAILED,
        now=now,
        action="execution.reaped",
        details={"minutes": minutes},
        values={"error": reason},
    )


@dataclass
class Recovered:
    """Work whose holder is presumed gone, handed back to the broker: what to queue."""

    chunks: list[tuple[uuid.UUID, int]] = field(default_factory=list)
    executions: list[uuid.UUID] = field(default_factory=list)
    emails: list[tuple[NotificationKind, uuid.UUID]] = field(default_factory=list)
    # Bulk retries' digests: the kind (approval or outcome) and the batch id.
    digests: list[tuple[NotificationKind, uuid.UUID]] = field(default_factory=list)
    interrupted: list[uuid.UUID] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.chunks or self.executions or self.emails or self.digests or self.interrupted
        )


def recover_lapsed_work(session: Session, *, now: datetime) -> Recovered:
    """Everything whose lease lapsed (`app.services.leases`), each handed back once: two
    sweeps at once never both take a row, as every step is a conditional UPDATE.

    - retry chunks with queued items: queued again;
    - approved executions no worker started: queued again;
    - running executions whose worker died: failed with the reason, their outcome
      email owed (a retry buys only what the lineage has not bought);
    - emails whose sender died or whose message was lost (`lapsed_emails`; those of a
      bulk retry's digest queue the digest again, once per batch), and the
      approval email of pending rows that never had one on record (inserted by hand).
    """
    recovered = Recovered()
    chunks = session.execute(
        update(RetryBatchItem)
        .where(
            RetryBatchItem.state == RequestState.QUEUED.value,
            leases.lapsed(RetryBatchItem, now),
        )
        .values(**leases.in_broker(now))
        .returning(RetryBatchItem.batch_id, RetryBatchItem.chunk)
        .execution_options(synchronize_session=False)
    )
    recovered.chunks = sorted({(batch_id, chunk) for batch_id, chunk in chunks})
    recovered.executions = list(
        session.scalars(
            update(PurchaseExecution)
            .where(
                PurchaseExecution.status == Status.APPROVED.value,
                ~schedules.waiting(now),
                or_(
                    PurchaseExecution.lease_expires_at < now,
                    and_(
                        PurchaseExecution.lease_expires_at.is_(None),
                        PurchaseExecution.updated_at < now - UNSTARTED_AFTER,
                    ),
                ),
            )
            # Queued again is no progress: the reaper's clock keeps running.
            .values(updated_at=PurchaseExecution.updated_at, **leases.in_broker(now))
            .returning(PurchaseExecution.execution_id)
            .execution_options(synchronize_session=False)
        )
    )
    for execution_id in _dead_runs(session, now):
        if executor.abandon(
            session, execution_id, "interrupted: the worker running it stopped", now=now
        ):
            recovered.interrupted.append(execution_id)
    owed = notifications.owe_missing_approval_emails(session, now=now, after=UNOWED_AFTER)
    recovered.emails = [(NotificationKind.APPROVAL, id_) for id_ in owed]
    digests: set[tuple[NotificationKind, uuid.UUID]] = set()
    for kind, execution_id, batch_id in notifications.lapsed_emails(session, now=now):
        if batch_id is None:
            recovered.emails.append((kind, execution_id))
        else:
            digests.add((kind, batch_id))
    recovered.digests = sorted(digests)
    return recovered


def _dead_runs(session: Session, now: datetime) -> list[uuid.UUID]:
    return list(
        session.scalars(
            select(PurchaseExecution.execution_id)
            .where(
                PurchaseExecution.status == Status.RUNNING.value,
                PurchaseExecution.lease_expires_at < now,
            )
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
    return rowcount(result)
