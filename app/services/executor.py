"""Running an approved execution: `approved` → `running` → `completed`
| `partially_completed` | `failed`, one purchase per selected item through the
provider registry.

Every purchase is first claimed in the `provider_purchases` ledger under
`<lineage root>:<item index>`, in a committed unit of work of its own, and only then
bought, with no transaction open while the provider works. So:

- an item whose key already holds a purchase (an ancestor bought it before failing) is
  marked purchased with that `purchase_id`, and nothing is bought again;
- a claim with no purchase recorded (a worker died while the provider was buying) is
  bought again only from a provider that is idempotent under the key, which answers
  the first purchase; any other provider's item fails with a hint to check by hand;
- a provider's refusal releases the claim: nothing was bought, a retry may buy it.

Each step touches the row's `updated_at` and writes only while the row is `running`, so
the reaper fails only rows whose worker is gone, and a worker that outlived its row's
reaping stops at its next step (recording in the ledger what it bought).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.db import rowcount, unit_of_work, utcnow
from app.domain import purchasing
from app.domain.approvals import ApprovalPolicy, authority_refusal
from app.domain.rbac import Action
from app.domain.recommendations import malformed_reason
from app.domain.statuses import IN_FLIGHT, Status
from app.models import ProviderPurchase, PurchaseExecution
from app.providers import ProviderRegistry, PurchaseFailed
from app.services import leases, notifications, transitions
from app.services.execution_reads import lineage_root
from app.services.identity import load_active_user, principal_for

UNKNOWN_OUTCOME = (
    "an earlier attempt claimed this purchase and its outcome is unknown, and {provider} "
    "purchases are not idempotent: check the {provider} console, then buy it by hand"
)


@dataclass(frozen=True)
class Run:
    """An execution the executor has moved to `running`."""

    execution_id: uuid.UUID
    lineage_root: uuid.UUID
    account_provider: str | None
    items: list[dict[str, Any]]


def start(
    session: Session,
    execution_id: uuid.UUID,
    *,
    owner: str,
    policy: ApprovalPolicy,
    now: datetime,
) -> Run | Status | None:
    """Move the row from `approved` to `running`, under a lease `owner` holds, and
    return what to run; None if it is not approved (run already, cancelled, reaped: a
    redelivered task does nothing).

    The approver's authority is checked again, as it is *now*; without
    it, or with recommendations no executor can read, the row fails at once and this
    returns `Status.FAILED`.
    """
    moved = transitions.move(
        session,
        PurchaseExecution.execution_id == execution_id,
        sources={Status.APPROVED},
        target=Status.RUNNING,
        now=now,
        action="execution.running",
        values=leases.held_by(owner, now),
    )
    if not moved:
        return None
    execution = session.get(PurchaseExecution, execution_id, populate_existing=True)
    assert execution is not None
    problem = _approver_problem(session, execution, policy) or malformed_reason(
        execution.recommendations
    )
    if problem is not None:
        _finish(session, execution_id, Status.FAILED, problem, now=now)
        return Status.FAILED
    return Run(
        execution_id=execution_id,
        lineage_root=lineage_root(session, execution_id),
        account_provider=execution.account_provider,
        items=[dict(item) for item in execution.recommendations],
    )


def run(run: Run, registry: ProviderRegistry) -> Status | None:
    """Buy every selected item, then settle the row. Each step is its own unit of work;
    the provider is called with none open. Returns the final status, or None if the row
    stopped being `running` under us (reaped)."""
    items = list(run.items)
    for index, item in enumerate(items):
        if not purchasing.is_selected(item):
            continue
        outcome = _purchase(run, index, item, registry)
        if outcome is None:
            return None
        items[index] = outcome
        with unit_of_work() as session:
            if not _write_items(session, run.execution_id, items, now=utcnow()):
                return None
    status, error = purchasing.outcome(items)
    with unit_of_work() as session:
        if not _finish(session, run.execution_id, status, error, now=utcnow()):
            return None
    return status


def _purchase(
    run: Run, index: int, item: Mapping[str, Any], registry: ProviderRegistry
) -> dict[str, Any] | None:
    """One item: claim, buy (or reuse what the lineage bought), record. None if the row
    is no longer running."""
    name = purchasing.item_provider(item, run.account_provider)
    provider = registry.get(name)
    if provider is None:
        return purchasing.failed(item, f"no purchasing provider for {name or '(none)'!r}")
    key = purchasing.ledger_key(run.lineage_root, index)
    with unit_of_work() as session:
        if not _touch(session, run.execution_id, now=utcnow()):
            return None
        claim, ours = _claim(session, key, run.execution_id, index, name)
    if claim.purchase_id is not None:
        return purchasing.purchased(item, claim.purchase_id)
    if not ours and not provider.idempotent:
        return purchasing.failed(item, UNKNOWN_OUTCOME.format(provider=name))
    try:
        purchase_id = provider.purchase(key, item)
    except PurchaseFailed as refusal:
        with unit_of_work() as session:
            _release(session, key)
        return purchasing.failed(item, str(refusal) or type(refusal).__name__)
    with unit_of_work() as session:
        recorded = _record(session, key, purchase_id, now=utcnow())
    return purchasing.purchased(item, recorded)


def _claim(
    session: Session, key: str, execution_id: uuid.UUID, index: int, provider: str
) -> tuple[ProviderPurchase, bool]:
    """Insert the ledger row for `key` unless it exists; the row, and whether this call
    made it. The unique key makes two claims of one purchase impossible."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    made = session.execute(
        insert(ProviderPurchase)
        .values(idempotency_key=key, execution_id=execution_id, item_index=index, provider=provider)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(ProviderPurchase.id)
    ).first()
    claim = session.scalars(
        select(ProviderPurchase)
        .where(ProviderPurchase.idempotency_key == key)
        .execution_options(populate_existing=True)
    ).one()
    return claim, made is not None


def _record(session: Session, key: str, purchase_id: str, *, now: datetime) -> str:
    """Record what the provider bought under `key`; if another worker recorded it first
    (the same idempotent purchase), theirs stands. Whatever the row's status: money was
    spent."""
    session.execute(
        update(ProviderPurchase)
        .where(ProviderPurchase.idempotency_key == key, ProviderPurchase.purchase_id.is_(None))
        .values(purchase_id=purchase_id, purchased_at=now)
    )
    recorded = session.scalar(
        select(ProviderPurchase.purchase_id).where(ProviderPurchase.idempotency_key == key)
    )
    return recorded or purchase_id


def _release(session: Session, key: str) -> None:
    """The provider bought nothing: drop the claim, so a retry may buy the item."""
    session.execute(
        delete(ProviderPurchase).where(
            ProviderPurchase.idempotency_key == key, ProviderPurchase.purchase_id.is_(None)
        )
    )


def _touch(session: Session, execution_id: uuid.UUID, *, now: datetime) -> bool:
    """Show progress to the reaper; False if the row is no longer running."""
    touched = session.execute(
        update(PurchaseExecution)
        .where(
            PurchaseExecution.execution_id == execution_id,
            PurchaseExecution.status == Status.RUNNING.value,
        )
        .values(updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return rowcount(touched) == 1


def _write_items(
    session: Session, execution_id: uuid.UUID, items: list[dict[str, Any]], *, now: datetime
) -> bool:
    """The per-item outcomes so far, on a row that is still running."""
    written = session.execute(
        update(PurchaseExecution)
        .where(
            PurchaseExecution.execution_id == execution_id,
            PurchaseExecution.status == Status.RUNNING.value,
        )
        .values(recommendations=items, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return rowcount(written) == 1


def _finish(
    session: Session,
    execution_id: uuid.UUID,
    status: Status,
    error: str | None,
    *,
    now: datetime,
    sources: frozenset[Status] = frozenset({Status.RUNNING}),
) -> bool:
    """End the row (from `sources`), and owe its outcome email in the same transaction."""
    moved = transitions.move(
        session,
        PurchaseExecution.execution_id == execution_id,
        sources=sources,
        target=status,
        now=now,
        action=f"execution.{status.value}",
        details={"error": error} if error else None,
        values={"error": error, "completed_at": now},
    )
    if moved:
        notifications.owe_outcome_email(session, execution_id, now=now)
    return bool(moved)


def abandon(session: Session, execution_id: uuid.UUID, reason: str, *, now: datetime) -> bool:
    """Fail an in-flight row whose run broke off (an error in the worker), so it can be
    retried now rather than when the reaper finds it; the ledger keeps what it bought."""
    return _finish(session, execution_id, Status.FAILED, reason, now=now, sources=IN_FLIGHT)


def _approver_problem(
    session: Session, execution: PurchaseExecution, policy: ApprovalPolicy
) -> str | None:
    """Why the approval no longer stands, if it doesn't: the signed-in approver was
    deactivated or lost the permission. A link's approval has no user to re-check (the
    token was the authority)."""
    if execution.approved_by_user_id is None:
        return None
    user = load_active_user(session, execution.approved_by_user_id)
    if user is None:
        return "approval withdrawn: the approving user is no longer active"
    refusal = authority_refusal(principal_for(user), Action.APPROVE, execution, policy)
    if refusal is not None:
        return f"approval withdrawn: {refusal.message}"
    return None
