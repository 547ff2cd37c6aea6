"""An execution as a person reads it before deciding: one line per recommendation and
the totals, in the words the approval email and the link pages share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.domain.money import usd
from app.domain.purchasing import is_selected
from app.domain.recommendations import items_of
from app.models import PurchaseExecution


@dataclass(frozen=True)
class Line:
    what: str
    where: str
    count: str
    term: str
    upfront: str
    monthly_savings: str
    selected: str


@dataclass(frozen=True)
class Summary:
    lines: list[Line]
    upfront: str
    savings: str


def summarize(execution: PurchaseExecution) -> Summary:
    return Summary(
        lines=[line_of(item) for item in items_of(execution.recommendations)],
        upfront=money(execution.total_upfront_cost),
        savings=money(execution.estimated_savings),
    )


def line_of(item: dict[str, Any]) -> Line:
    engine = f" ({item['engine']})" if item.get("engine") else ""
    return Line(
        what=f"{item.get('provider', '?')} {item.get('service', '?')} "
        f"{item.get('resource_type', '?')}{engine}",
        where=f"{item.get('region', '?')}, account {item.get('account_id', '?')}",
        count=str(item.get("count", "?")),
        term=f"{item.get('term_years', '?')}y {item.get('payment_option', '')}".strip(),
        upfront=money(item.get("upfront_cost")),
        monthly_savings=money(item.get("monthly_savings")),
        selected="yes" if is_selected(item) else "no",
    )


def money(value: Any) -> str:
    """An amount as people read it (`app.domain.money.usd`): "$12,000.00"."""
    return usd(value)
