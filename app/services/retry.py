"""Retrying a failed execution (SPEC section 3): asked for by an entry point, settled by
the worker. The rules are `app.domain.retry`; the writes are `app.services.successors`.

- `ask_for_retry` (panel, API, CLI): check, record a `RetryRequest`, commit, then queue
  the task with ids only. A refusal rolls the request back and is audited on its own.
- `settle_request` (the task): claim the request with a conditional UPDATE, so a
  redelivered task writes nothing; check again against fresh rows and the requester's
  permissions as they are now; write the successor or record the refusal.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from app import background, get_settings
from app.config import Settings
from app.db import db, new_uuid, unit_of_work
from app.domain.approvals import NO_APPROVER, ApprovalPolicy
from app.domain.errors import DomainError
from app.domain.rbac import Principal
from app.domain.retry import RequestState, RetryPolicy, retry_refusal
from app.models import AuditEvent, PurchaseExecution, RetryRequest
from app.providers import ProviderRegistry, current_registry
from app.services import audit, successors
from app.services.approvals import current_policy as approvals_policy
from app.services.approvers import unapprovable_successors
from app.services.executions import find_execution
from app.services.identity import load_active_user, principal_for

RETRY_TASK = "purchases.retry_execution"


def current_policy() -> RetryPolicy:
    """The policy of the app in the current context."""
    return policy_from(get_settings(), current_registry())


def policy_from(settings: Settings, registry: ProviderRegistry) -> RetryPolicy:
    """Redrive safety comes from the registry; `REDRIVE_UNSAFE_PROVIDERS` only adds to
    the unsafe set."""
    return RetryPolicy(
        threshold=settings.retry_threshold,
        extra_hints=settings.ops_hints_extra,
        redrivable_providers=registry.redrivable(),
        redrive_unsafe_providers=settings.redrive_unsafe_providers,
    )


def ask_for_retry(
    principal: Principal, raw_execution_id: str | uuid.UUID, *, force: bool
) -> RetryRequest:
    """The entry points' retry: check and record the request, commit, then queue it.

    A refusal (a `DomainError`: 400 malformed id, 404 unknown, then the SPEC's checks
    in order) is recorded in the audit trail, and raised.
    """
    try:
        with unit_of_work() as session:
            request = request_retry(
                session, principal, raw_execution_id, force=force, policy=current_policy()
            )
    except DomainError as refusal:
        audit.record_refusal(
            "retry.refused",
            refusal,
            actor=principal,
            execution_id=audit.refused_execution_id(raw_execution_id, refusal),
            force=force,
        )
        raise
    enqueue_retry(request)
    return request


def request_retry(
    session: Session,
    principal: Principal,
    raw_execution_id: str | uuid.UUID,
    *,
    force: bool,
    policy: RetryPolicy,
) -> RetryRequest:
    """Check that `principal` may retry the row now and record their request.

    Raises the refusal as a `DomainError`, having written nothing.
    """
    execution = find_execution(session, raw_execution_id)
    refusal = retry_refusal(principal, execution, policy, force=force)
    if refusal is not None:
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

    If the broker is unreachable now, beat's `maintenance.requeue_stalled_retry_requests`
    sends it once it is back, so the caller still answers "queued".
    """
    background.enqueue(RETRY_TASK, [str(request.id)], task_id=request.task_id)


def settle_request(
    session: Session,
    request_id: uuid.UUID,
    *,
    policy: RetryPolicy,
    approvals: ApprovalPolicy,
    grace: timedelta,
    now: datetime,
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
    principal, refusal = requester_now(
        session, request.requested_by_user_id, request.requested_by_email
    )
    execution = find_execution(session, request.execution_id)
    if refusal is None:
        refusal = retry_refusal(principal, execution, policy, force=request.force)
    if refusal is None:
        created = successors.create_successors(
            session, [execution], principal, grace=grace, approvals=approvals, now=now
        )
        if execution.execution_id in created:
            successor_id = created[execution.execution_id]
            _record_success(session, request, principal, execution, successor_id, now=now)
            return request
        # Lost the race to a concurrent retry of the same row: refuse as the web would.
        execution = find_execution(session, request.execution_id)
        refusal = retry_refusal(principal, execution, policy, force=request.force)
        if refusal is None:
            raise RuntimeError("the predecessor update matched no row, yet it is retryable")
    _reject(request, refusal, now=now)
    audit.record(
        session,
        "retry.rejected",
        actor=principal,
        execution_id=execution.execution_id,
        details=audit.refusal_details(refusal, force=request.force, request_id=str(request.id)),
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


def _record_success(
    session: Session,
    request: RetryRequest,
    principal: Principal,
    predecessor: PurchaseExecution,
    successor_id: uuid.UUID,
    *,
    now: datetime,
) -> None:
    request.state = RequestState.SUCCEEDED.value
    request.finished_at = now
    request.successor_execution_id = successor_id
    request.retry_attempt_n = predecessor.retry_attempt_n + 1
    session.add_all(
        success_events(
            principal,
            predecessor,
            successor_id,
            force=request.force,
            request_id=str(request.id),
        )
    )


def success_events(
    principal: Principal,
    predecessor: PurchaseExecution,
    successor_id: uuid.UUID,
    *,
    force: bool,
    **request: str,
) -> list[AuditEvent]:
    """The trail of one successful retry: on the predecessor, and on its successor.
    `request` names what asked for it (`request_id`, or `batch_id`)."""
    return [
        audit.event(
            "retry.succeeded",
            actor=principal,
            execution_id=predecessor.execution_id,
            details={
                **request,
                "successor_execution_id": str(successor_id),
                "retry_attempt_n": predecessor.retry_attempt_n + 1,
                "force": force,
            },
        ),
        audit.event(
            "execution.created",
            actor=principal,
            execution_id=successor_id,
            details={"retry_of": str(predecessor.execution_id), **request},
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


def _reject(request: RetryRequest, refusal: DomainError, *, now: datetime) -> None:
    request.state = RequestState.REJECTED.value
    request.finished_at = now
    request.error = refusal.message
    request.refusal_status = refusal.status
    request.details = dict(refusal.details)


def request_outcome(request: RetryRequest) -> dict[str, Any]:
    """What a task reports of a settled request (Flower shows it)."""
    return {
        "request_id": str(request.id),
        "state": request.state,
        "execution_id": None
        if request.successor_execution_id is None
        else str(request.successor_execution_id),
    }


def approver_warning(request: RetryRequest, retrier: Principal) -> str | None:
    """What an entry point tells the retrier when nobody may approve the successor: it
    will fail at once with `NO_APPROVER` and the ops hint that goes with it."""
    session = db.session()
    execution = find_execution(session, request.execution_id)
    if not unapprovable_successors(session, [execution], retrier, approvals_policy()):
        return None
    return (
        f"Nobody may approve the retry of {execution.execution_id}: it will fail "
        f"({NO_APPROVER}) — {current_policy().ops_hint(NO_APPROVER)}"
    )
