"""Retrying failed executions, asked for: one row or many, from the panel, the API or
the CLI. Settled by the worker (`app.services.retry_settle`); read through
`app.services.retry_batches`. The rules are `app.domain.retry`.

A single retry is a batch of one. Either way the entry point checks every row with the
retry's rules, records a batch with one item per row, commits, then queues one task
per chunk with ids only:

- `ask_for_retry` (one row): a refusal is the request's answer (400, 404, then the
  retry's checks in order); it is audited on its own and nothing is recorded. The
  batch's id is the request id the API answers.
- `ask_for_bulk_retry` (ids as given, or the rows a history filter matches): a
  refused row is settled at once with its refusal, and the rest are queued.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from app import background, task_names
from app.config import Settings, get_settings
from app.db import db, new_uuid, unit_of_work, utcnow
from app.domain.approvals import NO_APPROVER
from app.domain.bulk_retry import (
    CHUNK_SIZE,
    MAX_BATCH_ROWS,
    BatchKind,
    BulkSelection,
    bulk_refusal,
    chunk_of,
    parse_selection,
)
from app.domain.errors import DomainError
from app.domain.rbac import Principal
from app.domain.retry import RequestState, RetryPolicy
from app.domain.statuses import Status
from app.models import AuditEvent, PurchaseExecution, RetryBatch, RetryBatchItem
from app.providers import ProviderRegistry, current_registry
from app.services import audit, leases
from app.services.approvals import current_policy as approvals_policy
from app.services.approvers import unapprovable_successors
from app.services.execution_reads import HistoryFilter, find_execution
from app.services.retry_settle import Checked, check_rows, item_outcomes


def current_policy() -> RetryPolicy:
    """The policy of the app in the current context."""
    return policy_from(get_settings(), current_registry())


def policy_from(settings: Settings, registry: ProviderRegistry) -> RetryPolicy:
    """Redrive safety comes from the registry; `REDRIVE_UNSAFE_PROVIDERS` only adds to
    the unsafe set."""
    return RetryPolicy(
        threshold=settings.retry_threshold,
        extra_hints=settings.ops_hints_extra,
        redrivable=registry.redrivable,
        redrive_unsafe_providers=settings.redrive_unsafe_providers,
    )


def ask_for_retry(
    principal: Principal, raw_execution_id: str | uuid.UUID, *, force: bool
) -> RetryBatch:
    """Check one row and record its retry (a batch of one), commit, then queue it.

    A refusal (a `DomainError`) is recorded in the audit trail, and raised.
    """
    try:
        with unit_of_work() as session:
            batch, chunks = record_batch(
                session,
                principal,
                (str(raw_execution_id),),
                kind=BatchKind.SINGLE,
                selection=None,
                force=force,
                policy=current_policy(),
                now=utcnow(),
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
    enqueue_chunks(batch, chunks)
    return batch


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
            ids, described = _resolve(session, selection)
            batch, chunks = record_batch(
                session,
                principal,
                ids,
                kind=BatchKind.BULK,
                selection=described,
                force=force,
                policy=current_policy(),
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


def _resolve(session: Session, selection: BulkSelection) -> tuple[Sequence[str], dict[str, Any]]:
    """The ids a request names, and what the batch records of it."""
    if selection.execution_ids is not None:
        return selection.execution_ids, {"execution_ids": len(selection.execution_ids)}
    filters = retry_filter(selection.filter or {})
    return matching_ids(session, filters), {"filter": filters.as_args()}


def record_batch(
    session: Session,
    principal: Principal,
    ids: Sequence[str],
    *,
    kind: BatchKind,
    selection: dict[str, Any] | None,
    force: bool,
    policy: RetryPolicy,
    now: datetime,
) -> tuple[RetryBatch, list[int]]:
    """The batch and its items, in the caller's transaction; returns it and the chunks
    the worker has to settle.

    Every row is checked here first. A single retry's refusal is raised; a bulk retry's
    refused row is settled at once with its refusal (the requester sees it without
    waiting for a worker). The rest are queued for the worker, which checks them again
    against the rows as they are then.
    """
    checked = check_rows(session, principal, None, enumerate(ids), policy, force=force)
    if kind == BatchKind.SINGLE:
        if checked.refusals:
            raise checked.refusals[0]
        selection = {"execution_id": str(checked.accepted[0].execution_id)}
    batch = RetryBatch(
        id=new_uuid(),
        kind=kind,
        requested_by_user_id=principal.user_id,
        requested_by_email=principal.email,
        force=force,
        total=len(ids),
        selection=selection or {},
    )
    session.add(batch)
    session.flush()
    outcomes, events = item_outcomes(batch, principal, checked, {}, now=now)
    queued = [
        {"position": position, "state": RequestState.QUEUED.value, **leases.in_broker(now)}
        for position in checked.accepted
    ]
    items = sorted([*outcomes, *queued], key=lambda item: item["position"])
    if items:
        session.execute(
            insert(RetryBatchItem),
            [
                {
                    "settled_at": None,
                    "lease_owner": None,
                    "lease_expires_at": None,
                    **item,
                    "batch_id": batch.id,
                    "chunk": chunk_of(item["position"]),
                    "execution_id": _canonical(ids[item["position"]], checked, item["position"]),
                }
                for item in items
            ],
        )
    events.append(_requested_event(batch, principal, queued=len(queued)))
    audit.record_all(session, events)
    return batch, sorted({chunk_of(position) for position in checked.accepted})


def _canonical(raw: str, checked: Checked, position: int) -> str:
    """An item's id: canonical when it parsed, as given otherwise (its 400 says so)."""
    parsed = checked.parsed.get(position)
    return str(parsed) if parsed is not None else raw


def _requested_event(batch: RetryBatch, principal: Principal, *, queued: int) -> AuditEvent:
    if batch.is_single:
        return audit.event(
            "retry.requested",
            actor=principal,
            execution_id=batch.selection["execution_id"],
            details={"request_id": str(batch.id), "force": batch.force},
        )
    return audit.event(
        "retry.batch_requested",
        actor=principal,
        details={
            "batch_id": str(batch.id),
            "total": batch.total,
            "queued": queued,
            "force": batch.force,
            **batch.selection,
        },
    )


def retry_filter(raw: Mapping[str, Any]) -> HistoryFilter:
    """The rows a retry by filter may name: the history filter's fields, with its
    rules, over failed rows only. No status means `failed`; another status is a 400
    (only a failed row can be retried, so it could only ever match nothing)."""
    filters = HistoryFilter.parse_known(raw)
    if filters.status is None:
        return HistoryFilter.parse({**filters.as_args(), "status": Status.FAILED.value})
    if filters.status != Status.FAILED.value:
        raise DomainError(
            400,
            f'only failed executions can be retried: "status" must be "failed", not '
            f"{filters.status!r}",
        )
    return filters


def matching_ids(session: Session, filters: HistoryFilter) -> tuple[str, ...]:
    """The ids of the rows a retry filter matches, oldest first; 400 when more than a
    batch may hold."""
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


def matching_count(session: Session, filters: HistoryFilter) -> int:
    """How many rows a retry filter matches, counted up to one more than a batch holds."""
    capped = filters.apply(select(PurchaseExecution.execution_id)).limit(MAX_BATCH_ROWS + 1)
    return session.scalar(select(func.count()).select_from(capped.subquery())) or 0


def enqueue_chunks(batch: RetryBatch, chunks: Collection[int] | None = None) -> None:
    """Hand a committed batch's chunks to the worker: the batch id and chunk number.

    If the broker is unreachable now, the sweep sends them once their lease in the
    broker lapses, so the caller still answers "queued".
    """
    for chunk in chunks if chunks is not None else range(-(-batch.total // CHUNK_SIZE)):
        enqueue_chunk(batch.id, chunk)


def enqueue_chunk(batch_id: uuid.UUID, chunk: int) -> None:
    background.enqueue(task_names.RETRY, [str(batch_id), chunk])


def approver_warning(batch: RetryBatch, retrier: Principal) -> str | None:
    """What an entry point tells the retrier when nobody may approve the successor: it
    will fail at once with `NO_APPROVER` and the ops hint that goes with it."""
    session = db.session()
    execution = find_execution(session, batch.selection["execution_id"])
    if not unapprovable_successors(session, [execution], retrier, approvals_policy()):
        return None
    return (
        f"Nobody may approve the retry of {execution.execution_id}: it will fail "
        f"({NO_APPROVER}) — {current_policy().ops_hint(NO_APPROVER)}"
    )
