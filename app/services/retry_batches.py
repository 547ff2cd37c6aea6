"""A bulk retry's batch as its requester (or an admin) reads it: its state and counts,
counted from its items, never stored, and each row's outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.domain.bulk_retry import (
    BatchState,
    batch_state,
)
from app.domain.rbac import Principal
from app.domain.retry import RequestState
from app.models import RetryBatch, RetryBatchItem
from app.services.retry_requests import find_requested


def find_batch(session: Session, principal: Principal, raw_batch_id: str) -> RetryBatch:
    """A batch its requester (or an admin) may read (see `find_requested`)."""
    return find_requested(session, principal, RetryBatch, raw_batch_id, "retry batch")


def batch_as_dict(
    session: Session, batch: RetryBatch, *, with_items: bool = True
) -> dict[str, Any]:
    """`GET /api/purchases/retry-batches/<id>`: the state counted from the items, and
    each item's outcome as the single retry request would give it."""
    counts: dict[str, int] = {}
    last_settled: list[datetime] = []
    for item_state, count, settled_at in session.execute(
        select(RetryBatchItem.state, func.count(), func.max(RetryBatchItem.settled_at))
        .where(RetryBatchItem.batch_id == batch.id)
        .group_by(RetryBatchItem.state)
    ):
        counts[item_state] = count
        if settled_at is not None and item_state != RequestState.QUEUED.value:
            last_settled.append(settled_at)
    state = batch_state(counts)
    finished_at = max(last_settled, default=batch.created_at) if state is BatchState.DONE else None
    body: dict[str, Any] = {
        "batch_id": str(batch.id),
        "state": state.value,
        "total": batch.total,
        "queued": counts.get(RequestState.QUEUED.value, 0),
        "succeeded": counts.get(RequestState.SUCCEEDED.value, 0),
        "rejected": counts.get(RequestState.REJECTED.value, 0),
        "failed": counts.get(RequestState.FAILED.value, 0),
        "force": batch.force,
        "requested_by": batch.requested_by_email,
        "selection": batch.selection,
        "created_at": batch.created_at.isoformat() if batch.created_at else None,
        "finished_at": finished_at.isoformat() if finished_at else None,
    }
    if with_items:
        items = session.scalars(
            select(RetryBatchItem)
            .where(RetryBatchItem.batch_id == batch.id)
            .order_by(RetryBatchItem.position)
        )
        body["items"] = [item_as_dict(item) for item in items]
    return body


ITEM_FIELDS = ("execution_id", "state", "successor_execution_id", "status_code", "error")


def item_as_dict(item: RetryBatchItem) -> dict[str, Any]:
    """One row's outcome: the fields every item has, then its refusal's details."""
    body: dict[str, Any] = {
        "execution_id": item.execution_id,
        "state": item.state,
        "successor_execution_id": None
        if item.successor_execution_id is None
        else str(item.successor_execution_id),
        "status_code": item.status_code,
        "error": item.error,
    }
    return {**item.details, **body}
