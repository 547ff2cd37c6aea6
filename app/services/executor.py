"""Running an approved execution: `approved` → `running` → `completed`
| `partially_completed` | `failed`, one purchase per selected item through the
provider registry.

The row runs in its account's mode, recorded on the row when it starts
(`purchase_mode`): `simulate` buys from the simulator, `live` from the cloud's SDK, and
`dry_run` only asks the cloud for a quote (and EC2 to check the purchase with `DryRun`):
each item ends `quoted`, with the offering and price it would have bought, and nothing is
claimed in the ledger.

In `simulate` and `live`, every purchase is first claimed in the `provider_purchases`
ledger (`app.services.ledger`) under `<lineage root>:<item index>`, in a committed unit
of work of its own, and only then bought, with no transaction open while the provider works. So:

- an item whose key already holds a purchase (an ancestor bought it before failing) is
  marked purchased with that `purchase_id`, and nothing is bought again;
- a claim with no purchase recorded (a worker died between the provider's answer and
  the commit) is resolved by asking the provider (`find`): found, it is recorded and
  nothing is bought; not found, it is bought; the lookup failing, the item fails and
  nothing is bought. A provider that cannot look the key up for the item's service
  fails the item with a hint to check by hand;
- the item is quoted before it is bought, and a price above its `max_price` fails it;
- a provider's refusal releases the claim: nothing was bought, a retry may buy it; a
  purchase whose outcome the provider did not tell keeps it, for a retry to look up.

Every provider call is logged with the execution id and the key, never a credential.

Each step touches the row's `updated_at` and writes only while the row is `running`, so
the reaper fails only rows whose worker is gone, and a worker that outlived its row's
reaping stops at its next step (recording in the ledger what it bought).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import and_, update
from sqlalchemy.orm import Session

from app.db import rowcount, unit_of_work, utcnow
from app.domain import purchasing
from app.domain.approvals import ApprovalPolicy, authority_refusal
from app.domain.items import recommendations_problem
from app.domain.providers import PurchaseMode, normalize_service
from app.domain.rbac import Action
from app.domain.spending import commitment_refusal
from app.domain.statuses import IN_FLIGHT, Status
from app.models import PurchaseExecution
from app.providers import (
    AccountTarget,
    OutcomeUnknown,
    ProviderError,
    ProviderRegistry,
    PurchaseProvider,
)
from app.services import leases, ledger, notifications, schedules, spending, transitions
from app.services.accounts import target_of
from app.services.execution_reads import lineage_root
from app.services.identity import load_active_user, principal_for

log = logging.getLogger(__name__)
_T = TypeVar("_T")

UNKNOWN_OUTCOME = (
    "an earlier attempt claimed this purchase and its outcome is unknown, and {provider} "
    "cannot look it up for {service!r}: check the {provider} console, then buy it by hand"
)
LOOKUP_FAILED = (
    "an earlier attempt claimed this purchase and its outcome is unknown, and looking it up "
    "at {provider} failed ({reason}): nothing was bought; check the {provider} console, then "
    "retry"
)


@dataclass(frozen=True)
class Run:
    """An execution the executor has moved to `running`."""

    execution_id: uuid.UUID
    lineage_root: uuid.UUID
    account_provider: str | None
    items: list[dict[str, Any]]
    mode: PurchaseMode = PurchaseMode.SIMULATE
    account: AccountTarget | None = None
    # A spend limit caps the money: no item may cost more than the commitment it
    # declared (what the limits were checked against).
    capped: bool = False


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

    A row that must wait (its time, its plan paused, the freeze: `app.services.schedules`)
    is not moved, and this returns None: it is released when it stops waiting.

    The approver's authority and the spend limits of the approver and the creator are
    checked again, as they are *now*; without the authority, over a limit, or with
    recommendations no executor can read, the row fails at once and this returns
    `Status.FAILED`.
    """
    moved = transitions.move(
        session,
        and_(PurchaseExecution.execution_id == execution_id, ~schedules.waiting(now)),
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
    mode = execution.account_mode
    execution.purchase_mode = mode.value
    problem = _approver_problem(session, execution, policy) or recommendations_problem(
        execution.recommendations, mode, execution.account_provider
    )
    bound = spending.binding(
        session,
        (execution.approved_by_user_id, execution.created_by_user_id),
        now=now,
        excluding=execution_id,
    )
    over = bound.refusal(spending.spend_of(execution))
    if problem is None and over is not None:
        problem = over.message
    if problem is not None:
        _finish(session, execution_id, Status.FAILED, problem, now=now)
        return Status.FAILED
    return Run(
        execution_id=execution_id,
        lineage_root=lineage_root(session, execution_id),
        account_provider=execution.account_provider,
        items=[dict(item) for item in execution.recommendations],
        mode=mode,
        account=target_of(execution.cloud_account) if execution.cloud_account else None,
        capped=bound.caps_money,
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
    """One item: claim, resolve a lost outcome, quote, buy (or reuse what the lineage
    bought), record. None if the row is no longer running."""
    name = purchasing.item_provider(item, run.account_provider)
    provider = registry.get(name, run.mode)
    if provider is None:
        return purchasing.failed(item, f"no purchasing provider for {name or '(none)'!r}")
    key = purchasing.ledger_key(run.lineage_root, index)
    call = _Caller(run, provider, key)
    if run.mode is PurchaseMode.DRY_RUN:
        with unit_of_work() as session:
            if not _touch(session, run.execution_id, now=utcnow()):
                return None
        try:
            rehearsed = call("rehearse", lambda: provider.rehearse(item, call.account))
        except ProviderError as refusal:
            return purchasing.failed(item, _reason(refusal))
        too_dear = purchasing.price_refusal(item, rehearsed.as_dict())
        if too_dear is not None:
            return purchasing.failed(item, too_dear)
        return purchasing.quoted(item, rehearsed.as_dict())
    with unit_of_work() as session:
        if not _touch(session, run.execution_id, now=utcnow()):
            return None
        claim, ours = ledger.claim(session, key, run.execution_id, index, name, run.mode)
    if claim.purchase_id is not None:
        return purchasing.purchased(item, claim.purchase_id)
    if not ours:
        service = normalize_service(item.get("service"))
        if not provider.can_find(service):
            return purchasing.failed(item, UNKNOWN_OUTCOME.format(provider=name, service=service))
        try:
            found = call(
                "find", lambda: provider.find(key, item, call.account, since=claim.created_at)
            )
        except ProviderError as failure:
            return purchasing.failed(
                item, LOOKUP_FAILED.format(provider=name, reason=_reason(failure))
            )
        if found is not None:
            with unit_of_work() as session:
                return purchasing.purchased(item, ledger.record(session, key, found, now=utcnow()))
    try:
        quote = call("quote", lambda: provider.quote(item, call.account))
        too_dear = purchasing.price_refusal(item, quote.as_dict()) or (
            commitment_refusal(item, quote.as_dict()) if run.capped else None
        )
        if too_dear is not None:
            raise _Refused(too_dear)
        purchase_id = call("purchase", lambda: provider.purchase(key, item, call.account, quote))
    except OutcomeUnknown as unknown:
        # The claim stays: a retry asks the provider before it buys.
        return purchasing.failed(item, _reason(unknown))
    except (ProviderError, _Refused) as refusal:
        with unit_of_work() as session:
            ledger.release(session, key)
        return purchasing.failed(item, _reason(refusal))
    with unit_of_work() as session:
        recorded = ledger.record(session, key, purchase_id, now=utcnow())
    return {**purchasing.purchased(item, recorded), "quote": quote.as_dict()}


class _Refused(Exception):
    """The executor's own refusal to buy (a price above the item's limit)."""


def _reason(refusal: Exception) -> str:
    return str(refusal) or type(refusal).__name__


class _Caller:
    """Calls one provider for one item, logging each call with the execution id and the
    key (never the account's credentials: the provider holds none of ours)."""

    def __init__(self, run: Run, provider: PurchaseProvider, key: str) -> None:
        self.run, self.provider, self.key = run, provider, key
        self.account = run.account or AccountTarget(name="", provider=provider.name)

    def __call__(self, operation: str, call: Callable[[], _T]) -> _T:
        fields = {
            "execution_id": str(self.run.execution_id),
            "key": self.key,
            "provider": self.provider.name,
            "mode": self.run.mode.value,
            "operation": operation,
        }
        log.info("provider call %s", operation, extra=fields)
        try:
            answer = call()
        except (ProviderError, OutcomeUnknown) as error:
            log.warning("provider call %s refused: %s", operation, error, extra=fields)
            raise
        log.info("provider call %s answered", operation, extra=fields)
        return answer


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
