"""Azure's own reservation recommendations, read through azure-mgmt-consumption
(`reservation_recommendations.list`, scoped to the account's subscription), as
recommendation items ready to create.

One listing per reserved resource type Azure recommends and this product buys
(`RECOMMENDED_TYPES`), filtered at Azure to single-subscription scope and the last 30
days of usage, each followed by `nextLink` for at most `MAX_PAGES` pages (past the cap
the rest is left out, logged).

Azure answers both the enterprise (`legacy`) and the customer-agreement (`modern`) shape;
both are read. Their costs cover the hours of usage looked at (`totalHours`, else the
look-back period): an item's `monthly_savings` is `netSavings` per hour over a month (730
hours), and its `monthly_cost` is `totalCostWithReservedInstances` the same way. That is
the reservation's cost plus whatever usage it would leave uncovered, so it errs high,
which is the safe side for spend limits. Items are billed monthly (`no-upfront`): Azure
charges the same total either way.

Azure recommends the same sku for one and for three years; buying both would buy it
twice. Each such pair becomes two items, and only the one of `TERM_YEARS` is selected.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from azure.core.exceptions import AzureError
from azure.core.paging import PageIterator

from app.providers import AccountTarget, PurchaseFailed, recommended_item
from app.providers.azure.errors import reason
from app.providers.azure.orders import SERVICE_TYPES

log = logging.getLogger(__name__)

SOURCE = "azure-consumption"
READ_RECOMMENDATIONS = "Microsoft.Consumption/reservationRecommendations/read"
MAX_PAGES = 10
LOOK_BACK = "Last30Days"
TERM_YEARS = 1
HOURS_PER_MONTH = Decimal(730)
_LOOK_BACK_DAYS = {"last7days": 7, "last30days": 30, "last60days": 60}
_TERMS = {"P1Y": 1, "P3Y": 3}
# The reserved resource types Azure recommends for (its filter's spelling), by item service.
RECOMMENDED_TYPES: dict[str, str] = {
    "vm": "VirtualMachines",
    "sql": "SQLDatabases",
    "postgresql": "PostgreSQL",
    "mysql": "MySQL",
    "mariadb": "MariaDB",
    "redis": "RedisCache",
    "cosmosdb": "CosmosDB",
    "sqldatawarehouse": "SqlDataWarehouse",
    "appservice": "AppService",
    "managed-disk": "ManagedDisk",
    "blob-storage": "BlockBlob",
    "data-explorer": "AzureDataExplorer",
}
assert set(RECOMMENDED_TYPES) <= set(SERVICE_TYPES)


def recommendations(client: Any, account: AccountTarget) -> list[dict[str, Any]]:
    """Every reservation recommendation Azure makes for the account's subscription, as
    items; `client` is a `ConsumptionManagementClient`."""
    subscription = account.azure_subscription_id
    if not subscription:
        raise PurchaseFailed(
            f"account {account.name} has no Azure subscription id: set it before importing"
        )
    items: list[dict[str, Any]] = []
    for service, kind in RECOMMENDED_TYPES.items():
        found = client.reservation_recommendations.list(
            f"/subscriptions/{subscription}",
            filter=(
                f"properties/scope eq 'Single' and properties/resourceType eq '{kind}' "
                f"and properties/lookBackPeriod eq '{LOOK_BACK}'"
            ),
        )
        try:
            for recommendation in _bounded(found.by_page(), f"{kind} recommendations"):
                item = _item(recommendation, service, subscription)
                if item is not None:
                    items.append(item)
        except AzureError as exc:
            raise PurchaseFailed(reason(exc, READ_RECOMMENDATIONS)) from exc
    return _one_term_each(items)


def _bounded(pages: Iterator[Iterator[Any]], what: str) -> Iterator[Any]:
    for number, page in enumerate(pages, start=1):
        yield from page
        if number >= MAX_PAGES:
            if isinstance(pages, PageIterator) and pages.continuation_token:
                log.warning("Azure: %s has more than %d pages; the rest is left out", what, number)
            return


def _item(recommendation: Any, service: str, subscription: str) -> dict[str, Any] | None:
    properties = getattr(recommendation, "properties", None)
    if properties is None:
        return None
    sku = str(getattr(properties, "sku_name", None) or getattr(recommendation, "sku", None) or "")
    location = str(
        getattr(properties, "location", None) or getattr(recommendation, "location", None) or ""
    )
    term = _TERMS.get(str(getattr(properties, "term", None) or ""))
    count = _whole(getattr(properties, "recommended_quantity", None))
    if not sku or not location or term is None or count < 1:
        return None
    hours = _hours(properties)
    currency, savings = _amount(getattr(properties, "net_savings", None))
    _, cost = _amount(getattr(properties, "total_cost_with_reserved_instances", None))
    return recommended_item(
        "azure",
        service,
        source=SOURCE,
        account_id=subscription,
        region=location,
        resource_type=sku,
        count=count,
        term_years=term,
        payment_option="no-upfront",
        upfront_cost=0,
        monthly_cost=cost / hours * HOURS_PER_MONTH,
        monthly_savings=savings / hours * HOURS_PER_MONTH,
        currency=currency,
        sku=sku,
        location=location,
        scope="Single",
    )


def _one_term_each(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep every item; of the same sku in the same place for several terms, only the
    one of `TERM_YEARS` stays selected (else the first)."""
    chosen: dict[tuple[str, str, str], int] = {}
    for index, item in enumerate(items):
        key = (item["service"], item["sku"].lower(), item["location"].lower())
        if key not in chosen or (
            item["term_years"] == TERM_YEARS and items[chosen[key]]["term_years"] != TERM_YEARS
        ):
            chosen[key] = index
    kept = set(chosen.values())
    return [
        item if index in kept else {**item, "selected": False} for index, item in enumerate(items)
    ]


def _hours(properties: Any) -> Decimal:
    """The hours of usage the recommendation's costs cover."""
    total = getattr(properties, "total_hours", None)
    if isinstance(total, int) and total > 0:
        return Decimal(total)
    period = getattr(properties, "look_back_period", None)
    days = period if isinstance(period, int) and period > 0 else None
    days = days or _LOOK_BACK_DAYS.get(str(period or "").lower(), 30)
    return Decimal(days * 24)


def _amount(value: Any) -> tuple[str, Decimal]:
    """(currency, amount) of a legacy plain number or a modern `Amount`."""
    if value is None:
        return "USD", Decimal(0)
    if hasattr(value, "value"):
        return str(getattr(value, "currency", None) or "USD"), _decimal(value.value)
    return "USD", _decimal(value)


def _decimal(value: Any) -> Decimal:
    try:
        amount = Decimal(str(value if value is not None else 0))
    except ArithmeticError:
        return Decimal(0)
    return amount if amount.is_finite() else Decimal(0)


def _whole(value: Any) -> int:
    amount = _decimal(value)
    return int(amount) if amount >= 1 else 0
