"""The three writes of a retry, all or nothing for each row.

1. insert the successor: `pending`, the next attempt, the lineage's creator as its
   creator (whose purchase it is) and whoever asked as `retried_by_user_id`;
2. point the failed (or partially completed) predecessor at it, only if nobody did so
   first;
3. insert the successor's suppressions.

The successor carries only what the lineage has not bought (`bought_in_lineage`, one
query for all the rows): an item the ledger holds a purchase for is carried as bought
and not selected, and the successor's money and suppressions count only the rest.

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
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, case, delete, insert, literal, literal_column, select, update
from sqlalchemy.orm import Session

from app.db import CanonicalUUID, new_uuid
from app.domain.approvals import NO_APPROVER, ApprovalPolicy
from app.domain.rbac import Principal
from app.domain.retry import (
    RETRYABLE,
    successor_recommendations,
    suppression_counts,
    to_buy,
)
from app.domain.spending import totals_of
from app.domain.statuses import Status
from app.models import ProviderPurchase, PurchaseExecution, PurchaseSuppression
from app.services import notifications, transitions
from app.services.approvers import unapprovable_successors

# A lineage is as long as its retries; the bound only stops a hand-made cycle of
# `retry_execution_id`s from recursing without end.
MAX_LINEAGE_STEPS = 1000


def create_successors(
    session: Session,
    predecessors: Sequence[PurchaseExecution],
    principal: Principal,
    *,
    grace: timedelta,
    approvals: ApprovalPolicy,
    now: datetime,
    bought: Mapping[uuid.UUID, Mapping[int, str]] | None = None,
    digest: uuid.UUID | None = None,
) -> dict[uuid.UUID, uuid.UUID]:
    """The three writes for each predecessor; returns predecessor id → successor id
    for those it linked. A predecessor missing from the result was linked by another
    retry first, and nothing was written for it.

    `bought`: what each predecessor's lineage has bought (`bought_in_lineage`), when the
    caller has read it already; read here otherwise. `digest`: the bulk retry whose
    digest carries the approval emails (`app.services.digests`)."""
    if not predecessors:
        return {}
    if bought is None:
        bought = bought_in_lineage(session, [p.execution_id for p in predecessors])
    rows = insert_successors(session, predecessors, principal, now=now, bought=bought)
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
        digest=digest,
    )
    return {predecessor: successor_of[predecessor] for predecessor in linked}


def insert_successors(
    session: Session,
    predecessors: Sequence[PurchaseExecution],
    principal: Principal,
    *,
    now: datetime,
    bought: Mapping[uuid.UUID, Mapping[int, str]],
) -> list[dict[str, Any]]:
    """Write 1: a pending copy of each. It keeps the predecessor's creator, whose
    purchase it is: a retry never makes the retrier an owner, so `approve-own` is never
    borrowed through `retry-any`; the retrier is recorded beside it. Returns the rows
    written (each with `retry_of`, its predecessor's id).

    Its items are `successor_recommendations` (what the lineage bought carried as
    bought). Its costs are the predecessor's when the lineage bought nothing, else those
    of the items it will buy (upfront, and the yearly savings `estimated_savings`
    holds)."""
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
            **_costs(predecessor, bought.get(predecessor.execution_id, {})),
            "recommendations": successor_recommendations(
                predecessor.recommendations, bought.get(predecessor.execution_id, {})
            ),
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


def _costs(predecessor: PurchaseExecution, bought: Mapping[int, str]) -> dict[str, Any]:
    if not bought:
        return {
            "total_upfront_cost": predecessor.total_upfront_cost,
            "estimated_savings": predecessor.estimated_savings,
        }
    totals = totals_of(successor_recommendations(predecessor.recommendations, bought))
    return {"total_upfront_cost": totals.upfront, "estimated_savings": totals.yearly_savings}


def bought_in_lineage(
    session: Session, execution_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, dict[int, str]]:
    """For each execution, what its retry lineage has bought: item index → the ledger's
    purchase id, for every key `<lineage root>:<index>` that holds a purchase (a claim
    without one bought nothing yet, and the executor resolves it). Executions whose
    lineage bought nothing are left out.

    One query whatever the number of rows: a recursive walk back from each row to its
    first attempt (every purchase of a lineage was claimed by one of its attempts), with
    the ledger rows those attempts claimed."""
    if not execution_ids:
        return {}
    rows = PurchaseExecution.__table__
    zero = literal_column("0", Integer)
    back = (
        select(
            rows.c.execution_id.label("start_id"),
            rows.c.execution_id.label("member_id"),
            zero.label("depth"),
        )
        .where(rows.c.execution_id.in_(list(execution_ids)))
        .cte("lineage_back", recursive=True)
    )
    earlier = rows.alias("earlier")
    back = back.union_all(
        select(back.c.start_id, earlier.c.execution_id, back.c.depth + 1).where(
            earlier.c.retry_execution_id == back.c.member_id,
            back.c.depth < MAX_LINEAGE_STEPS,
        )
    )
    ledger = ProviderPurchase.__table__
    found = session.execute(
        select(
            back.c.start_id,
            back.c.member_id,
            back.c.depth,
            ledger.c.idempotency_key,
            ledger.c.purchase_id,
        )
        .select_from(back)
        .outerjoin(
            ledger,
            (ledger.c.execution_id == back.c.member_id) & ledger.c.purchase_id.is_not(None),
        )
    ).all()
    roots: dict[uuid.UUID, tuple[int, uuid.UUID]] = {}
    purchases: dict[uuid.UUID, list[tuple[str, str]]] = {}
    for start, member, depth, key, purchase_id in found:
        if start not in roots or depth > roots[start][0]:
            roots[start] = (depth, member)
        if key is not None and purchase_id is not None:
            purchases.setdefault(start, []).append((key, purchase_id))
    bought: dict[uuid.UUID, dict[int, str]] = {}
    for start, held in purchases.items():
        prefix = f"{roots[start][1]}:"
        for key, purchase_id in held:
            index = key[len(prefix) :] if key.startswith(prefix) else ""
            if index.isascii() and index.isdigit():
                bought.setdefault(start, {})[int(index)] = purchase_id
    return bought


def link_predecessors(
    session: Session, successor_of: dict[uuid.UUID, uuid.UUID], *, now: datetime
) -> set[uuid.UUID]:
    """Write 2: point each retryable row (failed or partially completed) at its
    successor, only where nobody did it first (one conditional UPDATE for all). Returns
    the predecessors it linked."""
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
            PurchaseExecution.status.in_([status.value for status in RETRYABLE]),
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
    """Write 3: one suppression per scope of the items each successor will buy (not
    those its lineage has bought)."""
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
        for scope, count in sorted(suppression_counts(to_buy(successor["recommendations"])).items())
    ]
    if rows:
        session.execute(insert(PurchaseSuppression), rows)
