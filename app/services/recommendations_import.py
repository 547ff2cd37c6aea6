"""Importing a cloud's own purchase recommendations for an account, as items a purchase
can be created from (`flask recommendations import`, the panel's New purchase page).

The account's mode says who is asked: a `simulate` account asks the simulator (a fixed
set per provider), a `dry_run` or `live` account asks the cloud (reading
recommendations buys nothing, so a dry run may read them). Nothing is written but the
audit trail: the items are handed back for the operator to review, preview and create.

An item the account already has an active suppression for (an execution is buying that
kind of commitment in that place; see SPEC's suppressions) is kept, but marked:
`suppressed` says why, and `selected` is false, so creating the whole set does not fail
on it and it is not bought twice.

Each import is audited as `recommendations.imported` (the account, how many items, the
source, the totals); an import that fails (no client for the account's mode, the cloud
refusing or unreachable) is a `DomainError` (503, or 502 with the cloud's reason in an
operator's words), audited as `recommendations.import_refused`. The cloud is asked before
anything is written, so no write lock is held while it answers; the audit event is
written in a unit of work of its own, so call this outside one.

Who may import is the entry point's decision: the New purchase page admits those who may
create purchases on the account; the command line is the deployment's operator.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import unit_of_work, utcnow
from app.domain.errors import DomainError
from app.domain.providers import PurchaseMode, normalize_provider
from app.domain.rbac import Principal
from app.domain.retry import SuppressionScope, scope_of
from app.domain.spending import Totals, money_text, totals_of
from app.models import CloudAccount, PurchaseSuppression
from app.providers import ProviderError, ProviderRegistry
from app.services import audit
from app.services.accounts import target_of

log = logging.getLogger(__name__)

IMPORTED = "recommendations.imported"
REFUSED = "recommendations.import_refused"


@dataclass(frozen=True)
class Imported:
    """What one import brought back: the items (suppressed ones marked and unselected),
    where they came from, when, and the money of the selected ones."""

    account_id: uuid.UUID
    account_name: str
    provider: str
    mode: PurchaseMode
    source: str
    fetched_at: datetime
    items: list[dict[str, Any]] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)

    @property
    def suppressed(self) -> int:
        return sum(1 for item in self.items if item.get("suppressed"))

    def summary(self) -> str:
        """One line for an operator: how many items, from where, and their money."""
        totals = self.totals
        held = f", {self.suppressed} suppressed (not selected)" if self.suppressed else ""
        return (
            f"{len(self.items)} recommendations for {self.account_name} from {self.source} "
            f"({self.mode.value}){held}; selected {totals.items}: upfront "
            f"{money_text(totals.upfront)}, monthly {money_text(totals.monthly)}, over the "
            f"term {money_text(totals.term_total)}, estimated savings "
            f"{money_text(totals.monthly_savings)}/month"
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON: the items and what describes them."""
        return {
            "account_id": str(self.account_id),
            "account_name": self.account_name,
            "provider": self.provider,
            "purchase_mode": self.mode.value,
            "source": self.source,
            "fetched_at": self.fetched_at.isoformat(),
            "items": self.items,
            "suppressed": self.suppressed,
            "totals": self.totals.as_dict(),
        }


def import_recommendations(
    session: Session,
    account: CloudAccount,
    registry: ProviderRegistry,
    *,
    actor: Principal | None = None,
) -> Imported:
    """The recommendations the provider serving `account` in its mode makes for it (see
    the module). `session` reads the account's suppressions; `actor` is who asked (None:
    the system)."""
    account_id, name, mode = account.id, account.name, account.mode
    provider_name = normalize_provider(account.provider) or account.provider
    target = target_of(account)
    details = {"account_id": str(account_id), "provider": provider_name, "mode": mode.value}
    try:
        provider = registry.get(provider_name, mode)
        if provider is None:
            raise DomainError(
                503,
                f"no {provider_name} client serves accounts in {mode.value} mode in this "
                "deployment: switch the account to simulate, or install the provider's client",
                account_id=str(account_id),
            )
        items = _items(_fetch(provider.recommendations, target, provider_name))
    except DomainError as refusal:
        _audit(REFUSED, actor, audit.refusal_details(refusal, **details))
        raise
    fetched_at = utcnow()
    marked = _mark_suppressed(session, items, fetched_at)
    imported = Imported(
        account_id=account_id,
        account_name=name,
        provider=provider_name,
        mode=mode,
        source=_source_of(marked, provider_name, mode),
        fetched_at=fetched_at,
        items=marked,
        totals=totals_of(marked),
    )
    _audit(
        IMPORTED,
        actor,
        {
            **details,
            "source": imported.source,
            "count": len(marked),
            "suppressed": imported.suppressed,
            "totals": imported.totals.as_dict(),
        },
    )
    return imported


def _fetch(ask: Any, target: Any, provider: str) -> Any:
    """The provider's answer, or a 502 in an operator's words."""
    try:
        return ask(target)
    except ProviderError as failure:
        raise DomainError(502, f"{provider} recommendations could not be read: {failure}") from None
    except Exception as failure:  # an SDK error the provider let through
        log.exception("reading %s recommendations raised", provider)
        raise DomainError(
            502,
            f"{provider} recommendations could not be read: {type(failure).__name__} (see "
            "the server log)",
        ) from None


def _items(answer: Any) -> list[dict[str, Any]]:
    if not isinstance(answer, list) or not all(isinstance(item, dict) for item in answer):
        raise DomainError(502, "the provider answered recommendations that are not a list of items")
    return answer


def _mark_suppressed(
    session: Session, items: list[dict[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """The items, those an active suppression covers marked and unselected."""
    active = active_suppressions(
        session, (str(item.get("account_id") or "") for item in items), now
    )
    if not active:
        return items
    marked = []
    for item in items:
        found = active.get(scope_of(item))
        if found is None:
            marked.append(item)
            continue
        reason = (
            f"suppressed until {found.expires_at:%Y-%m-%d %H:%M} UTC: execution "
            f"{found.execution_id} is buying {found.suppressed_count} of it"
        )
        marked.append({**item, "selected": False, "suppressed": reason})
    return marked


def active_suppressions(
    session: Session, account_ids: Iterable[str], now: datetime
) -> dict[SuppressionScope, PurchaseSuppression]:
    """The unexpired suppressions of the given cloud account ids, by what they cover (the
    one expiring last where several cover the same)."""
    wanted = sorted(set(account_ids))
    if not wanted:
        return {}
    rows = session.scalars(
        select(PurchaseSuppression)
        .where(PurchaseSuppression.account_id.in_(wanted), PurchaseSuppression.expires_at > now)
        .order_by(PurchaseSuppression.expires_at)
    )
    return {
        SuppressionScope(
            account_id=row.account_id,
            provider=row.provider,
            service=row.service,
            region=row.region,
            resource_type=row.resource_type,
            engine=row.engine,
        ): row
        for row in rows
    }


def _source_of(items: list[dict[str, Any]], provider: str, mode: PurchaseMode) -> str:
    sources = sorted({str(item.get("source")) for item in items if item.get("source")})
    if sources:
        return ", ".join(sources)
    return "simulator" if mode is PurchaseMode.SIMULATE else provider


def _audit(action: str, actor: Principal | None, details: dict[str, Any]) -> None:
    with unit_of_work() as session:
        audit.record(session, action, actor=actor, details=details)
