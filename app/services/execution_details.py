"""What an execution's details page shows beyond the row itself (issue 9): its retry
chain from the first attempt to the latest, each recommendation with its outcome and
which attempt of the lineage bought it (the ledger's word: an earlier attempt, this
one, or a later one), the row's audit events, and the names behind its ids.

Read-only, and a fixed number of queries whatever the chain's length or the number of
events: the chain is one recursive query (both directions from the row), the ledger of
the chain one more, the names one query with outer joins, the audit events one more.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, literal_column, select, union_all
from sqlalchemy.orm import Session, aliased

from app.domain.providers import mode_meaning
from app.domain.purchasing import is_selected, item_outcome, item_provider, quote_text
from app.domain.recommendations import items_of, malformed_reason
from app.models import (
    AuditEvent,
    CloudAccount,
    ProviderPurchase,
    PurchaseExecution,
    PurchasePlan,
    User,
)

# A chain is as long as its retries (a handful; a few more when forced). The bound only
# stops a hand-made cycle of `retry_execution_id`s from recursing without end.
MAX_CHAIN_STEPS = 1000
# Events are shown newest-bounded: a row refused many times keeps its latest events.
MAX_AUDIT_EVENTS = 200

# The item fields shown in their own columns, in this order (the fields a recommendation
# item carries).
ITEM_FIELDS = (
    "service",
    "region",
    "resource_type",
    "engine",
    "account_id",
    "count",
    "term_years",
    "payment_option",
    "upfront_cost",
    "monthly_savings",
)


@dataclass(frozen=True)
class ChainEntry:
    """One attempt of a retry lineage."""

    execution_id: uuid.UUID
    attempt: int
    status: str
    created_at: datetime | None


@dataclass(frozen=True)
class LedgerEntry:
    """The purchase the ledger holds for an item of the lineage, and the attempt that
    made it: `when` is "earlier", "this" or "later" than the row shown."""

    purchase_id: str
    execution_id: uuid.UUID
    attempt: int | None
    when: str


@dataclass(frozen=True)
class ItemDetails:
    """One recommendation and what became of it."""

    index: int
    provider: str
    fields: dict[str, Any]
    selected: bool
    outcome: str  # purchased | quoted | failed | skipped | pending
    purchase_id: Any
    error: Any
    quote: str | None  # the offering and price it was quoted, in words
    bought: LedgerEntry | None = None  # what the lineage's ledger holds for it


@dataclass(frozen=True)
class AuditEntry:
    at: datetime | None
    action: str
    actor_email: str | None
    details: str  # JSON text, escaped by the template like every other value


@dataclass(frozen=True)
class ExecutionDetails:
    chain: list[ChainEntry]
    items: list[ItemDetails]
    recommendations_error: str | None
    audit_events: list[AuditEntry]
    earlier_audit_events_omitted: bool
    account_name: str | None
    account_provider: str | None
    plan_name: str | None
    creator_email: str | None
    retrier_email: str | None
    mode: str  # what the row's `purchase_mode` means, in words

    @property
    def bought_earlier(self) -> int:
        """How many of the items earlier attempts of the lineage bought."""
        return sum(1 for item in self.items if item.bought and item.bought.when == "earlier")

    @property
    def bought_here(self) -> int:
        """How many of the items this attempt bought."""
        return sum(1 for item in self.items if item.bought and item.bought.when == "this")


def details_of(session: Session, execution: PurchaseExecution) -> ExecutionDetails:
    """Everything the details page of `execution` shows besides its own columns."""
    account_name, account_provider, plan_name, creator_email, retrier_email = _names(
        session, execution
    )
    events, omitted = audit_events_of(session, execution.execution_id)
    chain = retry_chain(session, execution.execution_id)
    items = items_with_outcomes(execution.recommendations, account_provider)
    return ExecutionDetails(
        chain=chain,
        items=with_ledger(items, lineage_ledger(session, chain, execution.execution_id)),
        recommendations_error=malformed_reason(execution.recommendations),
        audit_events=events,
        earlier_audit_events_omitted=omitted,
        account_name=account_name,
        account_provider=account_provider,
        plan_name=plan_name,
        creator_email=creator_email,
        retrier_email=retrier_email,
        mode=mode_meaning(execution.purchase_mode),
    )


def retry_chain(session: Session, execution_id: uuid.UUID) -> list[ChainEntry]:
    """The lineage of `execution_id`, from its first attempt to its latest successor,
    in one query: a recursive walk back through the rows whose `retry_execution_id`
    names the current one, and another forward along `retry_execution_id`."""
    rows = PurchaseExecution.__table__
    zero = literal_column("0", Integer)

    back = (
        select(rows.c.execution_id, zero.label("depth"))
        .where(rows.c.execution_id == execution_id)
        .cte("chain_back", recursive=True)
    )
    earlier = rows.alias("earlier")
    back = back.union_all(
        select(earlier.c.execution_id, back.c.depth - 1).where(
            earlier.c.retry_execution_id == back.c.execution_id,
            back.c.depth > -MAX_CHAIN_STEPS,
        )
    )

    forward = (
        select(rows.c.execution_id, rows.c.retry_execution_id, zero.label("depth"))
        .where(rows.c.execution_id == execution_id)
        .cte("chain_forward", recursive=True)
    )
    later = rows.alias("later")
    forward = forward.union_all(
        select(later.c.execution_id, later.c.retry_execution_id, forward.c.depth + 1).where(
            later.c.execution_id == forward.c.retry_execution_id,
            forward.c.depth < MAX_CHAIN_STEPS,
        )
    )

    members = union_all(
        select(back.c.execution_id, back.c.depth),
        select(forward.c.execution_id, forward.c.depth).where(forward.c.depth > 0),
    ).subquery("chain")
    found = session.execute(
        select(
            rows.c.execution_id,
            rows.c.retry_attempt_n,
            rows.c.status,
            rows.c.created_at,
        )
        .join(members, members.c.execution_id == rows.c.execution_id)
        .order_by(members.c.depth)
    )
    chain: list[ChainEntry] = []
    seen: set[uuid.UUID] = set()
    for member_id, attempt, status, created_at in found:
        if member_id in seen:  # a cycle (hand-made data): each row once
            continue
        seen.add(member_id)
        chain.append(ChainEntry(member_id, attempt, status, created_at))
    return chain


def items_with_outcomes(recommendations: Any, account_provider: str | None) -> list[ItemDetails]:
    """Each recommendation with its outcome; none for a malformed value (whose reason
    `malformed_reason` gives)."""
    return [
        ItemDetails(
            index=index,
            provider=item_provider(item, account_provider),
            fields={name: item.get(name) for name in ITEM_FIELDS},
            selected=is_selected(item),
            outcome=item_outcome(item),
            purchase_id=item.get("purchase_id"),
            error=item.get("error"),
            quote=quote_text(item["quote"]) if isinstance(item.get("quote"), dict) else None,
        )
        for index, item in enumerate(items_of(recommendations))
    ]


def lineage_ledger(
    session: Session, chain: Sequence[ChainEntry], execution_id: uuid.UUID
) -> dict[int, LedgerEntry]:
    """What the ledger holds for the lineage, by item index: its keys are
    `<first attempt>:<index>`, claimed by the attempts of the chain. Claims without a
    purchase bought nothing and are left out."""
    if not chain:
        return {}
    position = {entry.execution_id: n for n, entry in enumerate(chain)}
    here = position.get(execution_id, 0)
    attempts = {entry.execution_id: entry.attempt for entry in chain}
    prefix = f"{chain[0].execution_id}:"
    found = session.execute(
        select(
            ProviderPurchase.idempotency_key,
            ProviderPurchase.execution_id,
            ProviderPurchase.purchase_id,
        ).where(
            ProviderPurchase.execution_id.in_(list(position)),
            ProviderPurchase.purchase_id.is_not(None),
        )
    )
    ledger: dict[int, LedgerEntry] = {}
    for key, buyer, purchase_id in found:
        index = key[len(prefix) :] if key.startswith(prefix) else ""
        if not (index.isascii() and index.isdigit()) or purchase_id is None:
            continue
        n = position.get(buyer, here)
        when = "earlier" if n < here else "later" if n > here else "this"
        ledger[int(index)] = LedgerEntry(purchase_id, buyer, attempts.get(buyer), when)
    return ledger


def with_ledger(items: list[ItemDetails], ledger: dict[int, LedgerEntry]) -> list[ItemDetails]:
    return [replace(item, bought=ledger.get(item.index)) for item in items]


def audit_events_of(session: Session, execution_id: uuid.UUID) -> tuple[list[AuditEntry], bool]:
    """The row's audit events, oldest first: the latest `MAX_AUDIT_EVENTS` of them, and
    whether earlier ones were left out."""
    latest = list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.execution_id == execution_id)
            .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
            .limit(MAX_AUDIT_EVENTS + 1)
        )
    )
    omitted = len(latest) > MAX_AUDIT_EVENTS
    return [_entry(event) for event in reversed(latest[:MAX_AUDIT_EVENTS])], omitted


def _entry(event: AuditEvent) -> AuditEntry:
    text = json.dumps(event.details or {}, sort_keys=True, ensure_ascii=False, default=str)
    return AuditEntry(event.at, event.action, event.actor_email, text)


def _names(session: Session, execution: PurchaseExecution) -> Sequence[str | None]:
    """The account's name and provider, the plan's name, the creator's and the
    retrier's emails."""
    retrier = aliased(User)
    found = session.execute(
        select(
            CloudAccount.name, CloudAccount.provider, PurchasePlan.name, User.email, retrier.email
        )
        .select_from(PurchaseExecution)
        .outerjoin(CloudAccount, CloudAccount.id == PurchaseExecution.cloud_account_id)
        .outerjoin(PurchasePlan, PurchasePlan.id == PurchaseExecution.plan_id)
        .outerjoin(User, User.id == PurchaseExecution.created_by_user_id)
        .outerjoin(retrier, retrier.id == PurchaseExecution.retried_by_user_id)
        .where(PurchaseExecution.execution_id == execution.execution_id)
    ).first()
    return tuple(found) if found is not None else (None, None, None, None, None)
