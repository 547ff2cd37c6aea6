"""Reading retry requests: one by id for its requester, and the queued ones of a page."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.errors import DomainError
from app.domain.inputs import parse_uuid
from app.domain.rbac import Action, Principal, require
from app.domain.retry import RequestState
from app.models import RetryRequest


class Requested(Protocol):
    requested_by_user_id: uuid.UUID | None


R = TypeVar("R", bound=Requested)


def find_request(session: Session, principal: Principal, raw_request_id: str) -> RetryRequest:
    """A retry request its requester (or an admin) may read (see `find_requested`)."""
    return find_requested(session, principal, RetryRequest, raw_request_id, "retry request")


def find_requested(
    session: Session, principal: Principal, model: type[R], raw_id: str, what: str
) -> R:
    """A retry request or batch (`what`), which only its requester or an admin may read,
    while they may view purchases: 403 otherwise, 400 for a malformed id, 404 for an
    unknown one."""
    require(principal, Action.VIEW)
    found_id = parse_uuid(raw_id, f"{what} id")
    found = session.get(model, found_id, populate_existing=True)
    if found is None:
        raise DomainError(404, f"no {what} {found_id}")
    if not principal.is_admin and found.requested_by_user_id != principal.user_id:
        raise DomainError(403, f"only the user who asked for a {what} (or an admin) may read it")
    return found


def queued_requests_of(
    session: Session, principal: Principal, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    """For each of `ids` with a retry request by `principal` that the worker has not
    settled yet, that request's id (the newest, should there be several)."""
    if not ids or principal.user_id is None:
        return {}
    rows = session.execute(
        select(RetryRequest.execution_id, RetryRequest.id)
        .where(
            RetryRequest.execution_id.in_(ids),
            RetryRequest.requested_by_user_id == principal.user_id,
            RetryRequest.state == RequestState.QUEUED.value,
        )
        .order_by(RetryRequest.created_at)
    )
    return {execution_id: request_id for execution_id, request_id in rows}


def request_as_dict(request: RetryRequest) -> dict[str, Any]:
    """`GET /api/purchases/retry-requests/<id>`: the state, and the outcome once settled.

    `execution_id` is the successor's (set on success); a rejection carries the same
    `error` and details the web layer would have answered, and its status.
    """
    body: dict[str, Any] = {
        "request_id": str(request.id),
        "state": request.state,
        "retry_of": str(request.execution_id),
        "force": request.force,
        "execution_id": None
        if request.successor_execution_id is None
        else str(request.successor_execution_id),
        "retry_attempt_n": request.retry_attempt_n,
        "error": request.error,
        "requested_by": request.requested_by_email,
        "created_at": request.created_at.isoformat() if request.created_at else None,
        "finished_at": request.finished_at.isoformat() if request.finished_at else None,
    }
    if request.refusal_status is not None:
        body["status_code"] = request.refusal_status
    return {**request.details, **body}
