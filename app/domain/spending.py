"""The money a purchase commits to, and the spend limits that cap it. Pure rules.

An item's **commitment** is what it binds the buyer to pay over its whole term: its
`upfront_cost` plus its `monthly_cost` (the recurring charge, 0 when left out) for every
month of `term_years` (1 when left out). A purchase's commitment is that of its selected
items. Amounts are the items' own numbers, in the currency they are given in.

A **spend limit** belongs to a group and binds its members: the accounts, providers and
services they may buy, the most one purchase may commit to, and the most the group may
have approved in one UTC day. A user is bound by every limit of every group they belong
to (the strictest wins); a group without a limit binds nobody. A refusal is a 403 that
names the group, the limit and the amount, and nothing about other accounts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.domain.errors import DomainError
from app.domain.money import money_of
from app.domain.providers import normalize_provider, normalize_service
from app.domain.purchasing import is_selected, item_provider
from app.domain.recommendations import items_of

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
MONTHS_PER_YEAR = 12


def _amount(item: Mapping[str, Any], name: str) -> Decimal:
    amount = money_of(item.get(name))
    return amount if amount is not None and amount > 0 else ZERO


def term_years(item: Mapping[str, Any]) -> int:
    """The item's term in whole years; 1 when it gives none a rule could read."""
    value = item.get("term_years")
    if isinstance(value, bool) or not isinstance(value, int | str):
        return 1
    try:
        years = int(value)
    except ValueError:
        return 1
    return years if years >= 1 else 1


def money_text(amount: Decimal) -> str:
    return f"{amount:,.2f}"


def item_commitment(item: Mapping[str, Any]) -> Decimal:
    """Upfront plus recurring over the term."""
    months = MONTHS_PER_YEAR * term_years(item)
    return (_amount(item, "upfront_cost") + _amount(item, "monthly_cost") * months).quantize(CENT)


def commitment_refusal(item: Mapping[str, Any], quote: Mapping[str, Any]) -> str | None:
    """Why a quote may not be bought under a spend limit: it costs more over the term
    than the item declared (`upfront_cost` and `monthly_cost`), which is what the limits
    were checked against. A quote without a price leaves the declared amount standing."""
    total = money_of(quote.get("term_total"))
    declared = item_commitment(item)
    if total is None or total <= declared:
        return None
    return (
        f"quoted {money_text(total)} {quote.get('currency') or ''} over the term, more than the "
        f"{money_text(declared)} the item declares, which its spend limits were checked against"
    ).replace("  ", " ")


@dataclass(frozen=True)
class Totals:
    """A purchase's money, over its selected items."""

    upfront: Decimal = ZERO
    monthly: Decimal = ZERO
    term_total: Decimal = ZERO
    monthly_savings: Decimal = ZERO
    term_savings: Decimal = ZERO
    items: int = 0

    @property
    def yearly_savings(self) -> Decimal:
        """What `purchase_executions.estimated_savings` holds."""
        return (self.monthly_savings * MONTHS_PER_YEAR).quantize(CENT)

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            upfront=self.upfront + other.upfront,
            monthly=self.monthly + other.monthly,
            term_total=self.term_total + other.term_total,
            monthly_savings=self.monthly_savings + other.monthly_savings,
            term_savings=self.term_savings + other.term_savings,
            items=self.items + other.items,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON: money as decimal strings with two places."""
        return {
            "items": self.items,
            "upfront": f"{self.upfront:.2f}",
            "monthly": f"{self.monthly:.2f}",
            "term_total": f"{self.term_total:.2f}",
            "monthly_savings": f"{self.monthly_savings:.2f}",
            "yearly_savings": f"{self.yearly_savings:.2f}",
            "term_savings": f"{self.term_savings:.2f}",
        }


def totals_of(recommendations: Any) -> Totals:
    """The money of the selected items of `recommendations` (none for a malformed value)."""
    total = Totals()
    for item in items_of(recommendations):
        if not is_selected(item):
            continue
        months = MONTHS_PER_YEAR * term_years(item)
        savings = _amount(item, "monthly_savings")
        total += Totals(
            upfront=_amount(item, "upfront_cost"),
            monthly=_amount(item, "monthly_cost"),
            term_total=item_commitment(item),
            monthly_savings=savings,
            term_savings=(savings * months).quantize(CENT),
            items=1,
        )
    return total


def commitment_of(recommendations: Any) -> Decimal:
    return totals_of(recommendations).term_total


@dataclass(frozen=True)
class SpendLimit:
    """One group's limit as the rules read it; None allows everything of its kind."""

    group_id: int
    group: str
    account_ids: frozenset[str] | None = None
    providers: frozenset[str] | None = None
    services: frozenset[str] | None = None
    max_per_purchase: Decimal | None = None
    max_per_day: Decimal | None = None

    @property
    def caps_money(self) -> bool:
        return self.max_per_purchase is not None or self.max_per_day is not None


@dataclass(frozen=True)
class Spend:
    """What a limit is checked against: the account (its id, as text), what it buys
    (provider, service) and its commitment."""

    account_id: str | None
    account_provider: str | None
    recommendations: Any

    @property
    def amount(self) -> Decimal:
        return commitment_of(self.recommendations)

    def purchases(self) -> list[tuple[str, str]]:
        """(provider, service) of each selected item, in order, once each."""
        seen: dict[tuple[str, str], None] = {}
        for item in items_of(self.recommendations):
            if is_selected(item):
                provider = item_provider(item, self.account_provider)
                seen[(provider, normalize_service(item.get("service")))] = None
        if not seen and self.account_provider:
            seen[(normalize_provider(self.account_provider), "")] = None
        return list(seen)


def names_account(limits: Iterable[SpendLimit], account_id: str | None) -> bool:
    """Whether the limits name `account_id` as one the user may buy for (what
    `create-own` needs): some limit lists it, and none leaves it out."""
    lists = [limit.account_ids for limit in limits if limit.account_ids is not None]
    return bool(lists) and account_id is not None and all(account_id in ids for ids in lists)


def limit_refusal(
    limits: Sequence[SpendLimit],
    spend: Spend,
    spent_today: Mapping[int, Decimal],
) -> DomainError | None:
    """The first limit `spend` breaks, as a 403, or None. `spent_today`: what each
    group had approved today before this purchase (by group id)."""
    amount = spend.amount
    for limit in limits:
        refused = _refusal(limit, spend, amount, spent_today.get(limit.group_id, ZERO))
        if refused is not None:
            return refused
    return None


def _refusal(
    limit: SpendLimit, spend: Spend, amount: Decimal, spent: Decimal
) -> DomainError | None:
    def refuse(rule: str, message: str, **details: Any) -> DomainError:
        return DomainError(
            403,
            f'spend limit of group "{limit.group}": {message}',
            limit=rule,
            group=limit.group,
            amount=f"{amount:.2f}",
            **details,
        )

    if limit.account_ids is not None and spend.account_id not in limit.account_ids:
        return refuse("allowed_accounts", "this account is not one its members may buy for")
    for provider, service in spend.purchases():
        if limit.providers is not None and provider not in limit.providers:
            allowed = ", ".join(sorted(limit.providers)) or "none"
            return refuse(
                "allowed_providers",
                f"provider {provider or '(none)'!r} is not allowed (allowed: {allowed})",
            )
        if limit.services is not None and service and service not in limit.services:
            allowed = ", ".join(sorted(limit.services)) or "none"
            return refuse(
                "allowed_services",
                f"service {service!r} is not allowed (allowed: {allowed})",
            )
    if limit.max_per_purchase is not None and amount > limit.max_per_purchase:
        return refuse(
            "max_per_purchase",
            f"this purchase commits {money_text(amount)}, over its maximum per purchase of "
            f"{money_text(limit.max_per_purchase)}",
            maximum=f"{limit.max_per_purchase:.2f}",
        )
    if limit.max_per_day is not None and spent + amount > limit.max_per_day:
        return refuse(
            "max_per_day",
            f"this purchase commits {money_text(amount)}, which would bring today's approved "
            f"commitments to {money_text(spent + amount)}, over its maximum per day of "
            f"{money_text(limit.max_per_day)}",
            maximum=f"{limit.max_per_day:.2f}",
            spent_today=f"{spent:.2f}",
        )
    return None
