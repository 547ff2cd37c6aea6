"""The three writes of a retry (SPEC section 3), all or nothing.

1. insert the successor: `pending`, the next attempt, created by whoever asked;
2. point the failed predecessor at it, only if nobody did so first;
3. insert the successor's suppressions.

Together with them, in the same transaction, the successor's approval email is recorded
as owed (the outbox): it is sent after the commit, never before.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.db import new_uuid
from app.domain.rbac import Principal
from app.domain.retry import fresh_recommendations, suppression_counts
from app.domain.statuses import Status
from app.models import PurchaseExecution, PurchaseSuppression
from app.services import notifications


def create_successor(
    session: Session,
    predecessor: PurchaseExecution,
    principal: Principal,
    *,
    grace: timedelta,
    now: datetime,
) -> PurchaseExecution | None:
    """The three writes in a savepoint. Returns None, having written nothing, if
    another retry linked the predecessor first."""
    with session.begin_nested() as savepoint:
        successor = insert_successor(session, predecessor, principal, now=now)
        if not link_predecessor(session, predecessor, successor, now=now):
            savepoint.rollback()
            return None
        insert_suppressions(session, successor, expires_at=now + grace)
        notifications.owe_approval_email(session, successor.execution_id, now=now)
        session.flush()
    return successor


def insert_successor(
    session: Session, predecessor: PurchaseExecution, principal: Principal, *, now: datetime
) -> PurchaseExecution:
    """Write 1: a pending copy, created by the user who asked for the retry."""
    successor = PurchaseExecution(
        execution_id=new_uuid(),
        status=Status.PENDING.value,
        retry_attempt_n=predecessor.retry_attempt_n + 1,
        created_by_user_id=principal.user_id,
        plan_id=predecessor.plan_id,
        step_number=predecessor.step_number,
        cloud_account_id=predecessor.cloud_account_id,
        total_upfront_cost=predecessor.total_upfront_cost,
        estimated_savings=predecessor.estimated_savings,
        recommendations=fresh_recommendations(predecessor.recommendations),
        created_at=now,
        updated_at=now,
    )
    session.add(successor)
    session.flush()
    return successor


def link_predecessor(
    session: Session, predecessor: PurchaseExecution, successor: PurchaseExecution, *, now: datetime
) -> bool:
    """Write 2: point the failed row at its successor, only if nobody did it first."""
    linked = session.execute(
        update(PurchaseExecution)
        .where(
            PurchaseExecution.execution_id == predecessor.execution_id,
            PurchaseExecution.status == Status.FAILED.value,
            PurchaseExecution.retry_execution_id.is_(None),
        )
        .values(retry_execution_id=successor.execution_id, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return linked.rowcount == 1


def insert_suppressions(
    session: Session, execution: PurchaseExecution, *, expires_at: datetime
) -> list[PurchaseSuppression]:
    """Write 3: one suppression per scope of the execution's recommendations."""
    suppressions = [
        PurchaseSuppression(
            execution_id=execution.execution_id,
            account_id=scope.account_id,
            provider=scope.provider,
            service=scope.service,
            region=scope.region,
            resource_type=scope.resource_type,
            engine=scope.engine,
            suppressed_count=count,
            expires_at=expires_at,
        )
        for scope, count in sorted(suppression_counts(execution.recommendations).items())
    ]
    session.add_all(suppressions)
    session.flush()
    return suppressions
