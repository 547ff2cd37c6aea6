"""What an Azure item asks for, in the reservations API's terms: the reserved resource type,
the offering, the purchase request, and the quote from `calculatePrice`'s answer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

from azure.mgmt.reservations.models import (
    CalculatePriceResponseProperties,
    Catalog,
    PurchaseRequest,
    PurchaseRequestProperties,
    ReservationOrderResponse,
    SkuName,
)

from app.providers import AccountTarget, PurchaseFailed, Quote

# The item's `service` and the ReservedResourceType Azure sells it as.
SERVICE_TYPES: dict[str, str] = {
    "vm": "VirtualMachines",
    "sql": "SqlDatabases",
    "cosmosdb": "CosmosDb",
    "sqldatawarehouse": "SqlDataWarehouse",
    "appservice": "AppService",
    "redis": "RedisCache",
    "mysql": "MySql",
    "postgresql": "PostgreSql",
    "mariadb": "MariaDb",
    "managed-disk": "ManagedDisk",
    "blob-storage": "BlockBlob",
    "databricks": "Databricks",
    "data-explorer": "AzureDataExplorer",
    "dedicated-host": "DedicatedHost",
    "azure-files": "AzureFiles",
    "data-factory": "DataFactory",
}

BILLING_PLANS = {"all-upfront": "Upfront", "no-upfront": "Monthly"}
TERMS = {1: "P1Y", 3: "P3Y"}
MAX_CATALOG_PAGES = 10

# Order states in which nothing was bought.
FAILED_STATES = frozenset({"failed", "billingfailed", "cancelled", "canceled"})


@dataclass(frozen=True)
class Offering:
    """What Azure sells: a reserved resource type's sku in a location for a term. Its id
    (`Type/location/term/sku`) is the quote's `offering_id`."""

    resource_type: str
    location: str
    term: str
    sku: str
    title: str = ""

    @property
    def id(self) -> str:
        return "/".join((self.resource_type, self.location, self.term, self.sku))

    @classmethod
    def parse(cls, text: str) -> Offering | None:
        """The offering an id names, or None when `text` is not one."""
        parts = str(text).split("/", 3)
        if len(parts) != 4 or not all(parts) or parts[2] not in TERMS.values():
            return None
        return cls(*parts)

    def offered_by(self, entry: Catalog, plan: str) -> bool:
        """Whether the catalog entry sells this offering under billing `plan`."""
        if text(entry.name).lower() != self.sku.lower():
            return False
        locations = [str(place).lower() for place in entry.locations or ()]
        if locations and self.location.lower() not in locations:
            return False
        if entry.terms is not None and self.term not in [text(term) for term in entry.terms]:
            return False
        plans = (entry.billing_plans or {}).get(self.term)
        return plans is None or plan in [text(offered) for offered in plans]


def wanted_offering(item: Mapping[str, Any]) -> Offering:
    """The offering an item describes (its `offering_id`, else its sku, location and term);
    `PurchaseFailed` when it describes none."""
    resource_type = resource_type_of(item)
    if item.get("offering_id"):
        offering = Offering.parse(str(item["offering_id"]))
        if offering is None or offering.resource_type != resource_type:
            raise PurchaseFailed(
                f"offering not found: {item['offering_id']!r} is not an Azure offering of "
                f"{resource_type} (Type/location/term/sku)"
            )
        return offering
    location = str(item.get("location") or item.get("region") or "")
    sku = str(item.get("sku") or "")
    if not location or not sku:
        raise PurchaseFailed("offering not found: an Azure item needs `sku` and `location`")
    return Offering(resource_type, location, term_of(item), sku)


def catalog_title(entry: Catalog) -> str:
    """How the catalog names a sku to a person (tier and size), when it does."""
    return " ".join(text(part) for part in (entry.tier, entry.size) if part)


def subscription_of(account: AccountTarget) -> str:
    if not account.azure_subscription_id:
        raise PurchaseFailed(
            f"account {account.name} has no Azure subscription id: set it before buying"
        )
    return account.azure_subscription_id


def billing_plan_of(item: Mapping[str, Any]) -> str:
    option = str(item.get("payment_option") or "")
    if option not in BILLING_PLANS:
        raise PurchaseFailed(
            f"Azure reservations are paid all-upfront or no-upfront, not {option!r}: "
            "change the item's payment_option"
        )
    return BILLING_PLANS[option]


def term_of(item: Mapping[str, Any]) -> str:
    years = item.get("term_years")
    term = TERMS.get(years) if isinstance(years, int) else None
    if term is None:
        raise PurchaseFailed(f"Azure terms are 1 or 3 years, not {years!r}")
    return term


def resource_type_of(item: Mapping[str, Any]) -> str:
    service = str(item.get("service") or "")
    if service not in SERVICE_TYPES:
        raise PurchaseFailed(f"offering not found: Azure reservations do not cover {service!r}")
    return SERVICE_TYPES[service]


def purchase_request(
    item: Mapping[str, Any],
    account: AccountTarget,
    offering: Offering,
    plan: str,
    display_name: str | None = None,
) -> PurchaseRequest:
    """The body `calculatePrice` and the purchase take: the item's count of the offering,
    applied to the subscription alone (`scope` Single) or shared, billed to the account's
    billing scope (else the subscription)."""
    subscription = subscription_of(account)
    single = str(item.get("scope") or "Shared").lower() == "single"
    return PurchaseRequest(
        sku=SkuName(name=offering.sku),
        location=offering.location,
        properties=PurchaseRequestProperties(
            reserved_resource_type=offering.resource_type,
            billing_scope_id=account.azure_billing_scope or f"/subscriptions/{subscription}",
            term=offering.term,
            billing_plan=plan,
            quantity=int(item.get("count") or 1),
            display_name=display_name,
            applied_scope_type="Single" if single else "Shared",
            applied_scopes=[f"/subscriptions/{subscription}"] if single else None,
        ),
    )


def priced_quote(
    item: Mapping[str, Any],
    offering: Offering,
    plan: str,
    priced: CalculatePriceResponseProperties | None,
) -> Quote:
    """The quote from `calculatePrice`'s total for the term, in the billing currency (the
    pricing currency when Azure gives no billing total). Upfront pays the total at once;
    Monthly spreads it over the term's months, to the cent."""
    amount, currency = None, "USD"
    if priced is not None:
        total_price = priced.billing_currency_total or priced.pricing_currency_total
        if total_price is not None:
            amount, currency = total_price.amount, str(total_price.currency_code or "USD")
    total = _decimal(amount)
    count = int(item.get("count") or 1)
    title = (priced.sku_title if priced else None) or offering.title or offering.sku
    description = f"{title} in {offering.location}, {offering.term}, {plan}, x{count}"
    if total is None:
        return Quote(offering_id=offering.id, currency=currency, description=description)
    months = 36 if offering.term == "P3Y" else 12
    cent = Decimal("0.01")
    upfront = total.quantize(cent) if plan == "Upfront" else Decimal("0.00")
    monthly = Decimal("0.00") if plan == "Upfront" else (total / months).quantize(cent)
    return Quote(
        offering_id=offering.id,
        currency=currency,
        upfront=upfront,
        recurring_monthly=monthly,
        term_total=upfront + monthly * months,
        description=description,
    )


def text(value: object) -> str:
    """An SDK value as Azure spells it: an enum's value, not its Python name."""
    if value is None:
        return ""
    return str(value.value) if isinstance(value, Enum) else str(value)


def failed(order: ReservationOrderResponse) -> str | None:
    """The order's state when nothing was bought in it, else None."""
    state = text(order.provisioning_state)
    return state if state.lower() in FAILED_STATES else None


def order_id_of(order: ReservationOrderResponse | None, order_id: str) -> str:
    """The purchase id: the order's resource id."""
    named = order.id if order is not None else None
    return str(named or f"/providers/Microsoft.Capacity/reservationOrders/{order_id}")


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None
