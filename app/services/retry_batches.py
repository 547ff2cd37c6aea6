"""Retries as their requester (or an admin) reads them: a batch's state and counts,
counted from its items, never stored, and each row's outcome; a single retry (a batch
of one) as its request; the rows a viewer has a retry queued for."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.domain.bulk_retry import BatchKind, BatchState, batch_state
from app.domain.errors import DomainError
from app.domain.inputs import parse_uuid
from app.domain.rbac import Action, Principal, require
from app.domain.retry import RequestState
from app.models import PurchaseExecution, RetryBatch, RetryBatchItem


def find_batch(session: Session, principal: Principal, raw_batch_id: str) -> RetryBatch:
    """A batch its requester (or an admin) may read (see `_find`)."""
    return _find(session, principal, raw_batch_id, "retry batch")


def find_request(session: Session, principal: Principal, raw_request_id: str) -> RetryBatch:
    """A single retry its requester (or an admin) may read (see `_find`); a bulk
    batch is no retry request (404)."""
    batch = _find(session, principal, raw_request_id, "retry request")
    if not batch.is_single:
        raise DomainError(404, f"no retry request {batch.id}")
    return batch


def _find(session: Session, principal: Principal, raw_id: str, what: str) -> RetryBatch:
    """Only its requester or an admin may read a retry, while they may view purchases:
    403 otherwise, 400 for a malformed id, 404 for an unknown one."""
    require(principal, Action.VIEW)
    found_id = parse_uuid(raw_id, f"{what} id")
    found = session.get(RetryBatch, found_id, populate_existing=True)
    if found is None:
        raise DomainError(404, f"no {what} {found_id}")
    if not principal.is_admin and found.requested_by_user_id != principal.user_id:
        raise DomainError(403, f"only the user who asked for a {what} (or an admin) may read it")
    return found


def queued_for(
    session: Session, principal: Principal, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    """For each of `ids` with a retry by `principal` that the worker has not settled
    yet, that retry's id (the newest, should there be several)."""
    if not ids or principal.user_id is None:
        return {}
    rows = session.execute(
        select(RetryBatchItem.execution_id, RetryBatch.id)
        .join(RetryBatch, RetryBatch.id == RetryBatchItem.batch_id)
        .where(
            RetryBatchItem.execution_id.in_([str(id_) for id_ in ids]),
            RetryBatchItem.state == RequestState.QUEUED.value,
            RetryBatch.requested_by_user_id == principal.user_id,
            RetryBatch.kind == BatchKind.SINGLE.value,
        )
        .order_by(RetryBatch.created_at)
    )
    return {uuid.UUID(execution_id): batch_id for execution_id, batch_id in rows}


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


REQUEST_FIELDS = (
    "request_id",
    "state",
    "retry_of",
    "force",
    "execution_id",
    "retry_attempt_n",
    "error",
    "requested_by",
    "created_at",
    "finished_at",
    "status_code",
)


def request_as_dict(session: Session, batch: RetryBatch) -> dict[str, Any]:
    """`GET /api/purchases/retry-requests/<id>`: a single retry's state, and its outcome
    once settled. `execution_id` is the successor's (set on success); a rejection
    carries the same `error` and details the web layer would have answered, and its
    status."""
    item = session.scalars(
        select(RetryBatchItem)
        .where(RetryBatchItem.batch_id == batch.id)
        .execution_options(populate_existing=True)
    ).one()
    attempt = None
    if item.successor_execution_id is not None:
        attempt = session.scalar(
            select(PurchaseExecution.retry_attempt_n).where(
                PurchaseExecution.execution_id == item.successor_execution_id
            )
        )
    settled = item.state != RequestState.QUEUED.value
    body: dict[str, Any] = {
        "request_id": str(batch.id),
        "state": item.state,
        "retry_of": item.execution_id,
        "force": batch.force,
        "execution_id": None
        if item.successor_execution_id is None
        else str(item.successor_execution_id),
        "retry_attempt_n": attempt,
        "error": item.error,
        "requested_by": batch.requested_by_email,
        "created_at": batch.created_at.isoformat() if batch.created_at else None,
        "finished_at": item.settled_at.isoformat() if settled and item.settled_at else None,
    }
    if item.status_code is not None:
        body["status_code"] = item.status_code
    return {**item.details, **body}
