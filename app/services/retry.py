"""Retrying a failed execution (SPEC section 3): the one home of the retry rules' I/O.

Two steps:

- `ask_for_retry` (panel, API, CLI): in its own unit of work, `request_retry` runs
  every check and records a `RetryRequest`; only after the commit is it handed to the
  worker (`enqueue_retry`).
- `settle_request` (the `purchases.retry_execution` task): claim the request, re-run
  every check against fresh rows and the requester's permissions as they are now,
  and perform the three writes, or record the refusal. After the commit the task
  queues the approval email.

Every success and every refusal leaves an audit event in the same transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import get_settings
from app.config import Settings
from app.db import new_uuid, unit_of_work
from app.domain.errors import DomainError
from app.domain.ids import parse_uuid
from app.domain.rbac import Principal
from app.domain.retry import (
    RequestState,
    RetryPolicy,
    fresh_recommendations,
    retry_refusal,
    suppression_counts,
)
from app.domain.statuses import Status
from app.models import PurchaseExecution, PurchaseSuppression, RetryRequest
from app.services import audit
from app.services.executions import find_execution
from app.services.identity import load_active_user, principal_for

RETRY_TASK = "purchases.retry_execution"

log = logging.getLogger(__name__)


def ask_for_retry(
    principal: Principal, raw_execution_id: str | uuid.UUID, *, force: bool
) -> RetryRequest:
    """The entry points' retry: check and record the request, commit, then queue it.

    Raises the refusal as a `DomainError` (its audit record is committed).
    """
    with unit_of_work() as session:
        request = request_retry(
            session, principal, raw_execution_id, force=force, policy=current_policy()
        )
    enqueue_retry(request)
    return request


def current_policy() -> RetryPolicy:
    """The policy of the app in the current context."""
    return policy_from(get_settings())


def policy_from(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        threshold=settings.retry_threshold,
        extra_hints=settings.ops_hints_extra,
        redrive_unsafe_providers=settings.redrive_unsafe_providers,
    )


def request_retry(
    session: Session,
    principal: Principal,
    raw_execution_id: str | uuid.UUID,
    *,
    force: bool,
    policy: RetryPolicy,
) -> RetryRequest:
    """Check that `principal` may retry the row now and record their request.

    Raises the refusal as a `DomainError` (400 malformed id, 404 unknown, then the
    SPEC's checks in order) after recording it in the audit trail.
    """
    try:
        execution = find_execution(session, raw_execution_id)
    except DomainError as refusal:
        # The message names the id (repr-escaped when malformed: JSONB holds no NUL).
        _audit_refusal(session, principal, None, refusal, force=force)
        raise
    refusal = retry_refusal(principal, execution, policy, force=force)
    if refusal is not None:
        _audit_refusal(session, principal, execution.execution_id, refusal, force=force)
        raise refusal
    request = RetryRequest(
        id=new_uuid(),
        execution_id=execution.execution_id,
        requested_by_user_id=principal.user_id,
        requested_by_email=principal.email,
        force=force,
        state=RequestState.QUEUED.value,
        task_id=str(new_uuid()),
    )
    session.add(request)
    audit.record(
        session,
        "retry.requested",
        actor=principal,
        execution_id=execution.execution_id,
        details={"request_id": str(request.id), "force": force},
    )
    session.flush()
    return request


def enqueue_retry(request: RetryRequest) -> None:
    """Hand a committed request to the worker: ids only, under the request's task id.

    The committed request is the record of the work; if the broker is unreachable now,
    beat's `maintenance.requeue_stalled_retry_requests` sends it once it is back, so
    the caller still answers "queued".
    """
    try:
        current_app.extensions["celery"].send_task(
            RETRY_TASK, args=[str(request.id)], task_id=request.task_id, ignore_result=True
        )
    except (KombuOperationalError, RedisError) as exc:
        log.warning("retry request %s not queued yet (%s); beat will queue it", request.id, exc)


def find_request(session: Session, principal: Principal, raw_request_id: str) -> RetryRequest:
    """A retry request its requester (or an admin) may read: 400, 404, or 403 otherwise."""
    request_id = parse_uuid(raw_request_id, "retry request id")
    request = session.get(RetryRequest, request_id, populate_existing=True)
    if request is None:
        raise DomainError(404, f"no retry request {request_id}")
    if not principal.is_admin and request.requested_by_user_id != principal.user_id:
        raise DomainError(403, "only the user who asked for a retry (or an admin) may read it")
    return request


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


def settle_request(
    session: Session, request_id: uuid.UUID, *, policy: RetryPolicy, grace: timedelta, now: datetime
) -> RetryRequest | None:
    """The worker's half: claim the request, re-check, and write or refuse.

    Returns None when the request was settled before (a redelivered task): nothing is
    written then. The claim is a conditional UPDATE, so two deliveries of one request
    serialize on its row and the second finds it settled.
    """
    request = session.scalars(
        update(RetryRequest)
        .where(RetryRequest.id == request_id, RetryRequest.state == RequestState.QUEUED.value)
        .values(updated_at=now)
        .returning(RetryRequest)
        .execution_options(populate_existing=True, synchronize_session=False)
    ).one_or_none()
    if request is None:
        return None
    principal, refusal = _requester_now(session, request)
    execution = find_execution(session, request.execution_id)
    if refusal is None:
        refusal = retry_refusal(principal, execution, policy, force=request.force)
    if refusal is None:
        successor = _three_writes_or_none(session, execution, principal, grace=grace, now=now)
        if successor is None:  # lost the race to a concurrent retry of the same row
            execution = find_execution(session, request.execution_id)
            refusal = retry_refusal(principal, execution, policy, force=request.force)
            if refusal is None:
                raise RuntimeError("the predecessor update matched no row, yet it is retryable")
        else:
            _settle(request, RequestState.SUCCEEDED, now, successor=successor)
            audit.record(
                session,
                "retry.succeeded",
                actor=principal,
                execution_id=execution.execution_id,
                details={
                    "request_id": str(request.id),
                    "successor_execution_id": str(successor.execution_id),
                    "retry_attempt_n": successor.retry_attempt_n,
                    "force": request.force,
                },
            )
            audit.record(
                session,
                "execution.created",
                actor=principal,
                execution_id=successor.execution_id,
                details={"retry_of": str(execution.execution_id), "request_id": str(request.id)},
            )
            return request
    _settle(request, RequestState.REJECTED, now, refusal=refusal)
    _audit_refusal(
        session,
        principal,
        execution.execution_id,
        refusal,
        force=request.force,
        request_id=request.id,
        action="retry.rejected",
    )
    return request


def record_failure(session: Session, request_id: uuid.UUID, reason: str, *, now: datetime) -> bool:
    """Mark a still-queued request `failed` with `reason` (an unexpected error in the
    worker). Returns False if it was settled meanwhile."""
    failed = session.execute(
        update(RetryRequest)
        .where(RetryRequest.id == request_id, RetryRequest.state == RequestState.QUEUED.value)
        .values(state=RequestState.FAILED.value, error=reason, finished_at=now, updated_at=now)
        .returning(RetryRequest.execution_id, RetryRequest.requested_by_email)
    ).first()
    if failed is None:
        return False
    audit.record(
        session,
        "retry.failed",
        execution_id=failed.execution_id,
        details={
            "request_id": str(request_id),
            "reason": reason,
            "requested_by": failed.requested_by_email,
        },
    )
    return True


def _requester_now(session: Session, request: RetryRequest) -> tuple[Principal, DomainError | None]:
    """The requester with the permissions they have *now*; refused if no longer active."""
    user = (
        load_active_user(session, request.requested_by_user_id)
        if request.requested_by_user_id is not None
        else None
    )
    if user is None:
        principal = Principal(request.requested_by_user_id, request.requested_by_email, frozenset())
        return principal, DomainError(
            403, "not allowed to retry: the requesting user is no longer active"
        )
    return principal_for(user), None


def _three_writes_or_none(
    session: Session,
    predecessor: PurchaseExecution,
    principal: Principal,
    *,
    grace: timedelta,
    now: datetime,
) -> PurchaseExecution | None:
    """Successor, predecessor link, suppressions: all or nothing, in a savepoint.

    Returns None (having written nothing) if another retry linked the row first.
    """
    with session.begin_nested() as savepoint:
        successor = _insert_successor(session, predecessor, principal, now=now)
        if not _link_predecessor(session, predecessor, successor, now=now):
            savepoint.rollback()
            return None
        insert_suppressions(session, successor, expires_at=now + grace)
    return successor


def _insert_successor(
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


def _link_predecessor(
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


def _settle(
    request: RetryRequest,
    state: RequestState,
    now: datetime,
    *,
    successor: PurchaseExecution | None = None,
    refusal: DomainError | None = None,
) -> None:
    request.state = state.value
    request.finished_at = now
    if successor is not None:
        request.successor_execution_id = successor.execution_id
        request.retry_attempt_n = successor.retry_attempt_n
    if refusal is not None:
        request.error = refusal.message
        request.refusal_status = refusal.status
        request.details = dict(refusal.details)


def _audit_refusal(
    session: Session,
    principal: Principal,
    execution_id: uuid.UUID | None,
    refusal: DomainError,
    *,
    force: bool,
    request_id: uuid.UUID | None = None,
    action: str = "retry.refused",
) -> None:
    details: dict[str, Any] = {
        "status": refusal.status,
        "error": refusal.message,
        "force": force,
        **refusal.details,
    }
    if request_id is not None:
        details["request_id"] = str(request_id)
    audit.record(session, action, actor=principal, execution_id=execution_id, details=details)
