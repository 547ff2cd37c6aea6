"""Bulk retry (SPEC section 3), asked for: many rows at once, checked at once, settled a
chunk at a time by the worker (`app.services.bulk_settle`), read by
`app.services.retry_batches`.

`ask_for_bulk_retry` (API, panel, CLI): check the request, record a batch with one item
per row (ids as given, or the rows a filter matches), settle at once the rows the
single retry's rules refuse, commit, then queue one task per chunk, with ids only.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app import background
from app.db import new_uuid, unit_of_work, utcnow
from app.domain.bulk_retry import (
    CHUNK_SIZE,
    MAX_BATCH_ROWS,
    BulkSelection,
    bulk_refusal,
    chunk_of,
    parse_selection,
)
from app.domain.errors import DomainError
from app.domain.rbac import Principal
from app.domain.retry import RequestState, RetryPolicy
from app.domain.statuses import Status
from app.models import PurchaseExecution, RetryBatch, RetryBatchItem
from app.services import audit, retry
from app.services.bulk_settle import check_rows, item_outcomes
from app.services.executions import HistoryFilter

CHUNK_TASK = "purchases.retry_batch_chunk"


def ask_for_bulk_retry(principal: Principal, body: Any) -> RetryBatch:
    """Check a bulk request (400 for a malformed one, 403 if the requester may retry
    nothing at all), record its batch and items, commit, then queue its chunks.

    A refusal is audited and raised, having recorded no batch.
    """
    try:
        selection, force = parse_request(body)
        denied = bulk_refusal(principal)
        if denied is not None:
            raise denied
        with unit_of_work() as session:
            batch, chunks = record_batch(
                session,
                principal,
                selection,
                force=force,
                policy=retry.current_policy(),
                now=utcnow(),
            )
    except DomainError as refusal:
        audit.record_refusal("retry.batch_refused", refusal, actor=principal, execution_id=None)
        raise
    enqueue_chunks(batch, chunks)
    return batch


def parse_request(body: Any) -> tuple[BulkSelection, bool]:
    selection = parse_selection(body)
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise DomainError(400, '"force" must be true or false')
    return selection, force


def record_batch(
    session: Session,
    principal: Principal,
    selection: BulkSelection,
    *,
    force: bool,
    policy: RetryPolicy,
    now: datetime,
) -> tuple[RetryBatch, list[int]]:
    """The batch and its items, in the caller's transaction; returns it and the chunks
    the worker has to settle.

    Every row is checked here first, as the single retry's web layer does: a refused
    row's item is settled at once with its refusal (the requester sees it without
    waiting for a worker), and the rest are queued for the worker, which checks them
    again against the rows as they are then.
    """
    ids = selection.execution_ids
    if ids is None:
        ids = matching_ids(session, selection.filter or {})
    batch = RetryBatch(
        id=new_uuid(),
        requested_by_user_id=principal.user_id,
        requested_by_email=principal.email,
        force=force,
        total=len(ids),
        selection=selection.describe(),
    )
    session.add(batch)
    session.flush()
    checked = check_rows(session, principal, None, enumerate(ids), policy, force=force)
    outcomes, events = item_outcomes(batch, principal, checked, {}, now=now)
    queued = [
        {"position": position, "state": RequestState.QUEUED.value, "settled_at": None}
        for position in checked.accepted
    ]
    items = sorted([*outcomes, *queued], key=lambda item: item["position"])
    if items:
        session.execute(
            insert(RetryBatchItem),
            [
                {
                    **item,
                    "batch_id": batch.id,
                    "chunk": chunk_of(item["position"]),
                    "execution_id": ids[item["position"]],
                }
                for item in items
            ],
        )
    events.append(
        audit.event(
            "retry.batch_requested",
            actor=principal,
            details={
                "batch_id": str(batch.id),
                "total": batch.total,
                "queued": len(queued),
                "force": force,
                **batch.selection,
            },
        )
    )
    audit.record_all(session, events)
    return batch, sorted({chunk_of(position) for position in checked.accepted})


def matching_ids(session: Session, raw_filter: Mapping[str, Any]) -> tuple[str, ...]:
    """The ids of the rows a filter matches (failed ones unless it names a status),
    oldest first; 400 when more than a batch may hold."""
    filters = HistoryFilter.parse({"status": Status.FAILED.value, **raw_filter})
    query = filters.apply(select(PurchaseExecution.execution_id))
    query = query.order_by(PurchaseExecution.created_at, PurchaseExecution.execution_id)
    found = session.scalars(query.limit(MAX_BATCH_ROWS + 1)).all()
    if len(found) > MAX_BATCH_ROWS:
        raise DomainError(
            400,
            f"the filter matches more than {MAX_BATCH_ROWS:,} executions: narrow it",
            max_execution_ids=MAX_BATCH_ROWS,
        )
    return tuple(str(execution_id) for execution_id in found)


def enqueue_chunks(batch: RetryBatch, chunks: Collection[int] | None = None) -> None:
    """Hand a committed batch's chunks to the worker: the batch id and chunk number.

    If the broker is unreachable now, beat's `maintenance.requeue_stalled_retry_batches`
    sends them once it is back.
    """
    for chunk in chunks if chunks is not None else range(-(-batch.total // CHUNK_SIZE)):
        background.enqueue(CHUNK_TASK, [str(batch.id), chunk])


def stalled_chunks(
    session: Session, *, now: datetime, after: timedelta
) -> list[tuple[RetryBatch, int]]:
    """Chunks with items still queued `after` their batch was recorded: their task never
    reached a worker. Queueing them again is safe: a chunk's items are settled once."""
    rows = session.execute(
        select(RetryBatch, RetryBatchItem.chunk)
        .join(RetryBatchItem, RetryBatchItem.batch_id == RetryBatch.id)
        .where(
            RetryBatchItem.state == RequestState.QUEUED.value,
            RetryBatch.created_at < now - after,
        )
        .group_by(RetryBatch.id, RetryBatchItem.chunk)
        .limit(1000)
    )
    return [(batch, chunk) for batch, chunk in rows]
