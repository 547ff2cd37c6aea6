"""Retries, settled: one chunk of a batch per task run (a single retry is a batch of
one, so its one chunk).

`claim_chunk`: take the lease on the chunk's queued items (its own transaction,
committed before the work, so another worker sees it; `app.services.leases`).
`settle_chunk`: claim the items again with a conditional UPDATE inside the settling
transaction, so a redelivered chunk writes nothing twice; check every row with the
retry's rules (`retry_refusal`, against fresh rows and the requester's permissions
now); make the three writes for the accepted rows in set-based statements
(`successors.create_successors`); record each item's own outcome and its audit event.

A row's refusal is that item's outcome and touches no other. Should the chunk's
transaction fail for any other reason, the task settles its rows one at a time
(`positions`), so one bad row cannot hold back the rest.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, select, update
from sqlalchemy.orm import Session

from app.db import rowcount, utcnow
from app.domain.approvals import ApprovalPolicy
from app.domain.errors import DomainError
from app.domain.inputs import parse_uuid
from app.domain.rbac import Principal
from app.domain.recommendations import items_of
from app.domain.retry import RequestState, RetryPolicy, retry_refusal, successor_recommendations
from app.domain.spending import Spend
from app.models import AuditEvent, PurchaseExecution, RetryBatch, RetryBatchItem
from app.services import audit, leases, spending, successors
from app.services.execution_reads import unknown_execution
from app.services.identity import load_active_user, principal_for


def claim_chunk(
    session: Session, batch_id: uuid.UUID, chunk: int, *, owner: str, now: datetime
) -> int:
    """Take the lease on the chunk's queued items for `owner` (in the broker, its own,
    or lapsed). Returns how many it holds: none when another live run holds them or the
    chunk is settled."""
    claimed = session.execute(
        update(RetryBatchItem)
        .where(_queued(batch_id, chunk), leases.available(RetryBatchItem, owner, now))
        .values(**leases.held_by(owner, now))
        .execution_options(synchronize_session=False)
    )
    return rowcount(claimed)


def is_single(session: Session, batch_id: uuid.UUID) -> bool:
    """Is the batch a single retry (whose approval email goes on its own)?"""
    batch = session.get(RetryBatch, batch_id)
    return batch is None or batch.is_single


def settle_chunk(
    session: Session,
    batch_id: uuid.UUID,
    chunk: int,
    *,
    owner: str,
    policy: RetryPolicy,
    approvals: ApprovalPolicy,
    grace: timedelta,
    now: datetime,
    positions: Collection[int] | None = None,
) -> list[uuid.UUID]:
    """Settle the chunk's queued items that `owner` holds (or only those at
    `positions`). Returns the successors it created, whose approval emails are owed.

    The claim is a conditional UPDATE in this transaction: a second run of the chunk
    waits for this one and then finds nothing queued, or, if this one rolled back,
    does the whole chunk itself once it holds the lease.
    """
    claim = (
        update(RetryBatchItem)
        .where(_queued(batch_id, chunk), RetryBatchItem.lease_owner == owner)
        .values(settled_at=now)
        .returning(RetryBatchItem.position, RetryBatchItem.execution_id)
        .execution_options(synchronize_session=False)
    )
    if positions is not None:
        claim = claim.where(RetryBatchItem.position.in_(list(positions)))
    claimed = session.execute(claim).all()
    if not claimed:
        return []
    batch = session.get(RetryBatch, batch_id)
    assert batch is not None  # its items cascade with it
    principal, inactive = requester_now(
        session, batch.requested_by_user_id, batch.requested_by_email
    )
    checked = check_rows(session, principal, inactive, claimed, policy, force=batch.force)
    accepted = checked.accepted
    created = successors.create_successors(
        session,
        list(accepted.values()),
        principal,
        grace=grace,
        approvals=approvals,
        now=now,
        bought=checked.bought,
        digest=None if batch.is_single else batch.id,
    )
    lost = [position for position, row in accepted.items() if row.execution_id not in created]
    if lost:  # another retry linked these rows first: refuse as the web layer would
        fresh = load_rows(session, {accepted[position].execution_id for position in lost})
        for position in lost:
            row = fresh[accepted.pop(position).execution_id]
            refusal = retry_refusal(principal, row, policy, force=batch.force)
            if refusal is None:
                raise RuntimeError(
                    f"the predecessor update matched no row, yet {row.execution_id} is retryable"
                )
            checked.refusals[position] = refusal
    outcomes, events = item_outcomes(batch, principal, checked, created, now=now)
    _write_outcomes(session, batch.id, chunk, outcomes)
    audit.record_all(session, events)
    return list(created.values())


def _write_outcomes(
    session: Session, batch_id: uuid.UUID, chunk: int, outcomes: list[dict[str, Any]]
) -> None:
    """The claimed items' outcomes, one executemany. The chunk is in the WHERE clause so
    that whichever index PostgreSQL's generic plan picks for a batch it has no
    statistics of yet, a row's UPDATE reads at most a chunk, never the whole batch
    (measured: 0.74 ms a row at 5,000 rows by primary key alone)."""
    items = RetryBatchItem.__table__
    session.execute(
        update(items)
        .where(
            items.c.batch_id == bindparam("item_batch_id", type_=items.c.batch_id.type),
            items.c.chunk == bindparam("item_chunk"),
            items.c.position == bindparam("item_position"),
        )
        .values(
            state=bindparam("state"),
            successor_execution_id=bindparam("successor_execution_id"),
            status_code=bindparam("status_code"),
            error=bindparam("error"),
            details=bindparam("details"),
            settled_at=bindparam("settled_at"),
        ),
        [
            {
                **{key: value for key, value in item.items() if key != "position"},
                "item_batch_id": batch_id,
                "item_chunk": chunk,
                "item_position": item["position"],
            }
            for item in outcomes
        ],
    )


@dataclass
class Checked:
    """The rows of a batch (by position) after the single retry's checks."""

    parsed: dict[int, uuid.UUID] = field(default_factory=dict)
    accepted: dict[int, PurchaseExecution] = field(default_factory=dict)
    refusals: dict[int, DomainError] = field(default_factory=dict)
    # Every row found, by id, and what each row's lineage has bought (index → purchase
    # id; `successors.bought_in_lineage`): its successor carries only the rest.
    rows: dict[uuid.UUID, PurchaseExecution] = field(default_factory=dict)
    bought: dict[uuid.UUID, dict[int, str]] = field(default_factory=dict)

    def successor_items(self, row: PurchaseExecution) -> list[dict[str, Any]]:
        """The items `row`'s successor would carry (what the lineage bought, as bought)."""
        return successor_recommendations(
            items_of(row.recommendations), self.bought.get(row.execution_id, {})
        )


def check_rows(
    session: Session,
    principal: Principal,
    inactive: DomainError | None,
    raw_ids: Iterable[tuple[int, str]],
    policy: RetryPolicy,
    *,
    force: bool,
) -> Checked:
    """Each (position, id as given) through the single retry's checks, in its order:
    400 malformed, 404 unknown, then `inactive` (the requester is gone: 403), then
    `retry_refusal`, then the requester's spend limits (`app.services.spending`) against
    what the successor would buy (not what the lineage bought already). The rows are
    loaded in one query, what their lineages bought in one more, the limits once."""
    checked = Checked()
    for position, raw in raw_ids:
        try:
            checked.parsed[position] = parse_uuid(raw)
        except DomainError as malformed:
            checked.refusals[position] = malformed
    rows = load_rows(session, set(checked.parsed.values()))
    checked.rows = rows
    checked.bought = successors.bought_in_lineage(session, list(rows))
    limits = spending.binding(session, (principal.user_id,), now=utcnow())
    for position, execution_id in checked.parsed.items():
        row = rows.get(execution_id)
        if row is None:
            checked.refusals[position] = unknown_execution(execution_id)
            continue
        refusal = (
            inactive
            or retry_refusal(principal, row, policy, force=force)
            or limits.refusal(_successor_spend(checked, row))
        )
        if refusal is None:
            checked.accepted[position] = row
        else:
            checked.refusals[position] = refusal
    return checked


def _successor_spend(checked: Checked, row: PurchaseExecution) -> Spend:
    """The row as the limits see its successor: only what the lineage has not bought."""
    spend = spending.spend_of(row)
    if row.execution_id not in checked.bought:
        return spend
    return replace(spend, recommendations=checked.successor_items(row))


def load_rows(session: Session, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, PurchaseExecution]:
    if not ids:
        return {}
    rows = session.scalars(
        select(PurchaseExecution)
        .where(PurchaseExecution.execution_id.in_(list(ids)))
        .execution_options(populate_existing=True)
    )
    return {row.execution_id: row for row in rows}


def item_outcomes(
    batch: RetryBatch,
    principal: Principal,
    checked: Checked,
    created: Mapping[uuid.UUID, uuid.UUID],
    *,
    now: datetime,
) -> tuple[list[dict[str, Any]], list[AuditEvent]]:
    """Each settled item's outcome (rows `created` succeeded, refusals were rejected)
    and the audit events that record them."""
    asked = asked_by(batch)
    outcomes: list[dict[str, Any]] = []
    events: list[AuditEvent] = []
    for position, row in checked.accepted.items():
        if row.execution_id not in created:
            continue
        successor_id = created[row.execution_id]
        outcomes.append(_outcome(position, RequestState.SUCCEEDED, now, successor=successor_id))
        events += success_events(principal, row, successor_id, force=batch.force, **asked)
    for position, refusal in checked.refusals.items():
        outcomes.append(_outcome(position, RequestState.REJECTED, now, refusal=refusal))
        known = refusal.status not in (400, 404)
        events.append(
            audit.event(
                "retry.rejected",
                actor=principal,
                execution_id=checked.parsed[position] if known else None,
                details=audit.refusal_details(refusal, force=batch.force, **asked),
            )
        )
    return outcomes, events


def _outcome(
    position: int,
    state: RequestState,
    now: datetime,
    *,
    successor: uuid.UUID | None = None,
    refusal: DomainError | None = None,
) -> dict[str, Any]:
    return {
        "position": position,
        "state": state.value,
        "successor_execution_id": successor,
        "status_code": refusal.status if refusal is not None else None,
        "error": refusal.message if refusal is not None else None,
        "details": dict(refusal.details) if refusal is not None else {},
        "settled_at": now,
    }


def fail_items(
    session: Session,
    batch_id: uuid.UUID,
    chunk: int,
    reason: str,
    *,
    owner: str,
    now: datetime,
    positions: Collection[int] | None = None,
) -> int:
    """Mark the chunk's still-queued items (or those at `positions`) `failed` with
    `reason`: an error in the worker, not a refusal. Items another live run holds are
    left to it. Returns how many."""
    query = (
        update(RetryBatchItem)
        .where(_queued(batch_id, chunk), leases.available(RetryBatchItem, owner, now))
        .values(state=RequestState.FAILED.value, error=reason, settled_at=now)
        .returning(RetryBatchItem.execution_id)
        .execution_options(synchronize_session=False)
    )
    if positions is not None:
        query = query.where(RetryBatchItem.position.in_(list(positions)))
    failed = session.scalars(query).all()
    if failed:
        batch = session.get(RetryBatch, batch_id)
        assert batch is not None
        audit.record(
            session,
            "retry.failed",
            execution_id=uuid.UUID(failed[0]) if batch.is_single else None,
            details={
                **asked_by(batch),
                "reason": reason,
                "requested_by": batch.requested_by_email,
                "execution_ids": failed,
            },
        )
    return len(failed)


def queued_positions(session: Session, batch_id: uuid.UUID, chunk: int) -> list[int]:
    return list(
        session.scalars(
            select(RetryBatchItem.position)
            .where(_queued(batch_id, chunk))
            .order_by(RetryBatchItem.position)
        )
    )


def _queued(batch_id: uuid.UUID, chunk: int) -> ColumnElement[bool]:
    """The chunk's items the worker has still to settle."""
    return and_(
        RetryBatchItem.batch_id == batch_id,
        RetryBatchItem.chunk == chunk,
        RetryBatchItem.state == RequestState.QUEUED.value,
    )


def asked_by(batch: RetryBatch) -> dict[str, str]:
    """What the audit trail names as having asked: a single retry's request id, or a
    bulk retry's batch id."""
    return {"request_id" if batch.is_single else "batch_id": str(batch.id)}


def success_events(
    principal: Principal,
    predecessor: PurchaseExecution,
    successor_id: uuid.UUID,
    *,
    force: bool,
    **asked: str,
) -> list[AuditEvent]:
    """The trail of one successful retry: on the predecessor, and on its successor."""
    return [
        audit.event(
            "retry.succeeded",
            actor=principal,
            execution_id=predecessor.execution_id,
            details={
                **asked,
                "successor_execution_id": str(successor_id),
                "retry_attempt_n": predecessor.retry_attempt_n + 1,
                "force": force,
            },
        ),
        audit.event(
            "execution.created",
            actor=principal,
            execution_id=successor_id,
            details={"retry_of": str(predecessor.execution_id), **asked},
        ),
    ]


def requester_now(
    session: Session, user_id: uuid.UUID | None, email: str
) -> tuple[Principal, DomainError | None]:
    """The requester with the permissions they have *now*; refused if no longer active."""
    user = load_active_user(session, user_id) if user_id is not None else None
    if user is None:
        principal = Principal(user_id, email, frozenset())
        return principal, DomainError(
            403, "not allowed to retry: the requesting user is no longer active"
        )
    return principal_for(user), None
