"""Retrying failed (or partially completed) executions, asked for: one row or many,
from the panel, the API or the CLI. Settled by the worker (`app.services.retry_settle`);
read through `app.services.retry_batches`. The rules are `app.domain.retry`.

A single retry is a batch of one. Either way the entry point checks every row with the
retry's rules, records a batch with one item per row, commits, then queues one task
per chunk with ids only:

- `ask_for_retry` (one row): a refusal is the request's answer (400, 404, then the
  retry's checks in order); it is audited on its own and nothing is recorded. The
  batch's id is the request id the API answers.
- `ask_for_bulk_retry` (ids as given, or the rows a history filter matches): a
  refused row is settled at once with its refusal, and the rest are queued.
- `preview_bulk_retry`: the same request, checked the same way (`check_rows`) and
  written nowhere: the rows grouped by what would happen to them, with their money.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
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
from app.domain.retry import (
    RETRYABLE,
    RequestState,
    RetryPolicy,
    preview_reason,
    shows_the_row,
)
from app.domain.spending import Totals, totals_of
from app.domain.statuses import Status
from app.models import AuditEvent, PurchaseExecution, RetryBatch, RetryBatchItem
from app.providers import ProviderRegistry, current_registry
from app.services import audit, leases
from app.services.approvals import current_policy as approvals_policy
from app.services.approvers import unapprovable_successors
from app.services.execution_reads import HistoryFilter, find_execution
from app.services.retry_settle import Checked, check_rows, item_outcomes

# How many ids a preview's group lists (its count says how many it holds).
PREVIEW_IDS_SHOWN = 100


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


def preview_bulk_retry(principal: Principal, body: Any) -> dict[str, Any]:
    """What `ask_for_bulk_retry` would do with `body`, written nowhere (no batch, no
    row, no audit event: a preview changes nothing, so there is nothing to audit).

    The same parsing, the same rows and the same checks (`check_rows`, the requester's
    spend limits included), so the verdict is the real one as the rows are now. Each
    group's money is that of what its rows' successors would carry: a partially
    completed row counts only what its lineage has not bought. A constant number of
    queries whatever the number of rows. A malformed request is a 400 and a requester
    who may retry nothing a 403, as for the real thing."""
    selection, force = parse_request(body)
    denied = bulk_refusal(principal)
    if denied is not None:
        raise denied
    session = db.session()
    ids, _described = _resolve(session, selection)
    checked = check_rows(session, principal, None, enumerate(ids), current_policy(), force=force)
    return bulk_preview(ids, checked)


def bulk_preview(ids: Sequence[str], checked: Checked) -> dict[str, Any]:
    """`checked` as the preview shows it: the rows that would be queued, then one group
    per kind of refusal (`preview_reason`), each with its count, money and first ids.
    A row refused before its authorization passed (malformed, unknown, not the
    requester's to retry) counts no money: a refusal never tells what another's row
    holds."""
    groups: dict[tuple[int | None, str | None], PreviewGroup] = {}
    queued = groups.setdefault((None, None), PreviewGroup("queued", None, None))
    for position in sorted({*checked.accepted, *checked.refusals}):
        execution_id = checked.parsed.get(position)
        row = checked.rows.get(execution_id) if execution_id is not None else None
        refusal = checked.refusals.get(position)
        money = Totals()
        if row is not None and (refusal is None or shows_the_row(refusal)):
            money = totals_of(checked.successor_items(row))
        shown = str(execution_id) if execution_id is not None else ids[position]
        if refusal is None:
            queued.add(shown, money)
            continue
        reason = preview_reason(refusal)
        group = groups.setdefault(
            (refusal.status, reason), PreviewGroup("refused", refusal.status, reason)
        )
        group.add(shown, money)
    found = [group for group in groups.values() if group.count or group.outcome == "queued"]
    return {
        "total": len(ids),
        "groups": [group.as_dict() for group in found],
        "totals": queued.totals.as_dict(),
    }


@dataclass
class PreviewGroup:
    """The rows of a preview that share one outcome."""

    outcome: str  # "queued" | "refused"
    status: int | None
    reason: str | None
    count: int = 0
    totals: Totals = field(default_factory=Totals)
    execution_ids: list[str] = field(default_factory=list)

    def add(self, execution_id: str, money: Totals) -> None:
        self.count += 1
        self.totals += money
        if len(self.execution_ids) < PREVIEW_IDS_SHOWN:
            self.execution_ids.append(execution_id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "status": self.status,
            "reason": self.reason,
            "count": self.count,
            "totals": self.totals.as_dict(),
            "execution_ids": self.execution_ids,
        }


def retry_filter(raw: Mapping[str, Any]) -> HistoryFilter:
    """The rows a retry by filter may name: the history filter's fields, with its
    rules, over retryable rows only: `failed` (what no status means) or
    `partially_completed`. Another status is a 400 (such a row cannot be retried, so it
    could only ever match nothing)."""
    filters = HistoryFilter.parse_known(raw)
    if filters.status is None:
        return HistoryFilter.parse({**filters.as_args(), "status": Status.FAILED.value})
    if filters.status not in RETRYABLE:
        raise DomainError(
            400,
            'only failed or partially completed executions can be retried: "status" must '
            f'be "failed" or "partially_completed", not {filters.status!r}',
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
