"""The three writes of a retry, all or nothing for each row.

1. insert the successor: `pending`, the next attempt, the lineage's creator as its
   creator (whose purchase it is) and whoever asked as `retried_by_user_id`;
2. point the failed predecessor at it, only if nobody did so first;
3. insert the successor's suppressions.

A successor nobody may approve (`app.services.approvers`) fails at once in the same
transaction, with `no approver for this account`; the others owe their approval email.

Together with them, in the same transaction, the successor's approval email is recorded
as owed (the outbox): it is sent after the commit, never before.

One retry and a bulk retry's chunk take the same path: each write is one set-based
statement for all the rows, so a chunk of hundreds costs a handful of round trips. A
row whose predecessor another retry linked first loses its successor in the same
transaction: for that row nothing is written, and the others are not affected.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, insert, literal, update
from sqlalchemy.orm import Session

from app.db import CanonicalUUID, new_uuid
from app.domain.approvals import NO_APPROVER, ApprovalPolicy
from app.domain.rbac import Principal
from app.domain.retry import fresh_recommendations, suppression_counts
from app.domain.statuses import Status
from app.models import PurchaseExecution, PurchaseSuppression
from app.services import notifications, transitions
from app.services.approvers import unapprovable_successors


def create_successors(
    session: Session,
    predecessors: Sequence[PurchaseExecution],
    principal: Principal,
    *,
    grace: timedelta,
    approvals: ApprovalPolicy,
    now: datetime,
) -> dict[uuid.UUID, uuid.UUID]:
    """The three writes for each predecessor; returns predecessor id → successor id
    for those it linked. A predecessor missing from the result was linked by another
    retry first, and nothing was written for it."""
    if not predecessors:
        return {}
    rows = insert_successors(session, predecessors, principal, now=now)
    successor_of = {row["retry_of"]: row["execution_id"] for row in rows}
    linked = link_predecessors(session, successor_of, now=now)
    lost = [successor_of[predecessor] for predecessor in successor_of.keys() - linked]
    if lost:
        session.execute(
            delete(PurchaseExecution)
            .where(PurchaseExecution.execution_id.in_(lost))
            .execution_options(synchronize_session=False)
        )
    created = [row for row in rows if row["retry_of"] in linked]
    insert_suppressions(session, created, expires_at=now + grace)
    unapprovable = unapprovable_successors(
        session,
        [predecessor for predecessor in predecessors if predecessor.execution_id in linked],
        principal,
        approvals,
    )
    # Nobody may approve these: they fail at once rather than wait for an email nobody
    # could act on.
    transitions.fail_pending(session, [successor_of[p] for p in unapprovable], NO_APPROVER, now=now)
    notifications.owe_approval_emails(
        session,
        [row["execution_id"] for row in created if row["retry_of"] not in unapprovable],
        now=now,
    )
    return {predecessor: successor_of[predecessor] for predecessor in linked}


def insert_successors(
    session: Session,
    predecessors: Sequence[PurchaseExecution],
    principal: Principal,
    *,
    now: datetime,
) -> list[dict[str, Any]]:
    """Write 1: a pending copy of each. It keeps the predecessor's creator, whose
    purchase it is: a retry never makes the retrier an owner, so `approve-own` is never
    borrowed through `retry-any`; the retrier is recorded beside it. Returns the rows
    written (each with `retry_of`, its predecessor's id)."""
    rows = [
        {
            "execution_id": new_uuid(),
            "retry_of": predecessor.execution_id,
            "status": Status.PENDING.value,
            "retry_attempt_n": predecessor.retry_attempt_n + 1,
            "created_by_user_id": predecessor.created_by_user_id,
            "retried_by_user_id": principal.user_id,
            "plan_id": predecessor.plan_id,
            "step_number": predecessor.step_number,
            "cloud_account_id": predecessor.cloud_account_id,
            "total_upfront_cost": predecessor.total_upfront_cost,
            "estimated_savings": predecessor.estimated_savings,
            "recommendations": fresh_recommendations(predecessor.recommendations),
            "created_at": now,
            "updated_at": now,
        }
        for predecessor in predecessors
    ]
    session.execute(
        insert(PurchaseExecution),
        [{key: value for key, value in row.items() if key != "retry_of"} for row in rows],
    )
    return rows


def link_predecessors(
    session: Session, successor_of: dict[uuid.UUID, uuid.UUID], *, now: datetime
) -> set[uuid.UUID]:
    """Write 2: point each failed row at its successor, only where nobody did it first
    (one conditional UPDATE for all). Returns the predecessors it linked."""
    uuid_type = CanonicalUUID()
    successor = case(
        *(
            (
                PurchaseExecution.execution_id == literal(predecessor, uuid_type),
                literal(new, uuid_type),
            )
            for predecessor, new in successor_of.items()
        )
    )
    linked = session.execute(
        update(PurchaseExecution)
        .where(
            PurchaseExecution.execution_id.in_(list(successor_of)),
            PurchaseExecution.status == Status.FAILED.value,
            PurchaseExecution.retry_execution_id.is_(None),
        )
        .values(retry_execution_id=successor, updated_at=now)
        .returning(PurchaseExecution.execution_id)
        .execution_options(synchronize_session=False)
    )
    return set(linked.scalars())


def insert_suppressions(
    session: Session, successors: Sequence[dict[str, Any]], *, expires_at: datetime
) -> None:
    """Write 3: one suppression per scope of each successor's recommendations."""
    rows = [
        {
            "execution_id": successor["execution_id"],
            "account_id": scope.account_id,
            "provider": scope.provider,
            "service": scope.service,
            "region": scope.region,
            "resource_type": scope.resource_type,
            "engine": scope.engine,
            "suppressed_count": count,
            "expires_at": expires_at,
        }
        for successor in successors
        for scope, count in sorted(suppression_counts(successor["recommendations"]).items())
    ]
    if rows:
        session.execute(insert(PurchaseSuppression), rows)
