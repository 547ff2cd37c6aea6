"""Savings Plans (a global API, reached in us-east-1).

`CreateSavingsPlan` takes a `clientToken`: `key_uuid(key)` (one key, one token, in a
format any token field accepts), so a re-sent purchase answers the plan bought first; and
tags: `ccp:idempotency-key=<key>`. `DescribeSavingsPlans` cannot filter by tag, so `find`
walks its pages (at most `MAX_PAGES`) for the tag.

A plan's price is its hourly commitment over the term (8,760 hours a year): no upfront
pays it monthly (730 hours a month); all upfront pays it all at once; partial upfront pays
half, in whole dollars rounded up, at once and the rest monthly. The item's `count` does
not multiply it: the commitment is the plan's whole size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from app.providers import PurchaseFailed, Quote, key_uuid
from app.providers.aws.common import (
    CENT,
    HOURS_PER_MONTH,
    TAG_KEY,
    buy,
    pages,
    payment_option,
    term_seconds,
    term_years,
    text,
)
from app.providers.aws.errors import call

REGION = "us-east-1"
PLAN_TYPES = ("Compute", "EC2Instance", "SageMaker")
Page = tuple[list[dict[str, Any]], str | None]


def commitment(item: Mapping[str, Any]) -> Decimal:
    """The item's hourly commitment in USD: positive, at most five decimal places."""
    raw = item.get("hourly_commitment")
    try:
        amount = Decimal(str(raw))
    except (InvalidOperation, ValueError):
        amount = Decimal(0)
    if not amount.is_finite() or amount <= 0:
        raise PurchaseFailed(f"the item's hourly_commitment must be a positive amount: {raw!r}")
    if amount != amount.quantize(Decimal("0.00001")):
        raise PurchaseFailed(f"the item's hourly_commitment has over five decimals: {raw!r}")
    return amount


def plan_type(item: Mapping[str, Any]) -> str:
    value = text(item, "plan_type")
    if value not in PLAN_TYPES:
        raise PurchaseFailed(f"the item's plan_type must be one of {', '.join(PLAN_TYPES)}")
    return value


@dataclass(frozen=True)
class SavingsPlans:
    client_name: str = "savingsplans"
    findable: bool = True

    def quote(self, client: Any, item: Mapping[str, Any]) -> Quote:
        hourly_commitment = commitment(item)
        offering_id = str(item.get("offering_id") or "")
        search = {"offeringIds": [offering_id]} if offering_id else self.filters(item)

        def fetch(token: str | None) -> Page:
            extra = {"nextToken": token} if token else {}
            answer = call(
                "savingsplans:DescribeSavingsPlansOfferings",
                lambda: client.describe_savings_plans_offerings(**search, maxResults=100, **extra),
            )
            return answer.get("searchResults", []), answer.get("nextToken")

        what = ", ".join(f"{k}={v}" for k, v in search.items())
        for offering in pages(fetch, f"Savings Plans offerings for {what}"):
            return self.priced(offering, item, hourly_commitment)
        raise PurchaseFailed(f"offering not found: Savings Plans with {what}")

    @staticmethod
    def filters(item: Mapping[str, Any]) -> dict[str, Any]:
        """The typed filters `DescribeSavingsPlansOfferings` gets for the item."""
        kind = plan_type(item)
        filters: dict[str, Any] = {
            "planTypes": [kind],
            "durations": [term_seconds(item)],
            "paymentOptions": [payment_option(item)],
            "currencies": ["USD"],
        }
        if kind == "EC2Instance":
            filters["filters"] = [
                {"name": "region", "values": [text(item, "region")]},
                {"name": "instanceFamily", "values": [text(item, "instance_family")]},
            ]
        return filters

    @staticmethod
    def priced(offering: Mapping[str, Any], item: Mapping[str, Any], rate: Decimal) -> Quote:
        years = term_years(item)
        total = rate * HOURS_PER_MONTH * 12 * years
        option = str(offering.get("paymentOption") or payment_option(item))
        if option == "All Upfront":
            upfront = total
        elif option == "Partial Upfront":
            upfront = (total / 2).quantize(Decimal(1), ROUND_CEILING)
        else:
            upfront = Decimal(0)
        monthly = (total - upfront) / (12 * years)
        return Quote(
            offering_id=str(offering["offeringId"]),
            currency=str(offering.get("currency") or "USD"),
            upfront=upfront.quantize(CENT, ROUND_HALF_UP),
            recurring_monthly=monthly.quantize(CENT, ROUND_HALF_UP),
            term_total=total.quantize(CENT, ROUND_HALF_UP),
            description=(
                f"Savings Plan {offering.get('planType')} {option} "
                f"{offering.get('description') or ''} at {rate}/hour".replace("  ", " ")
            ),
        )

    def rehearse(self, client: Any, item: Mapping[str, Any], quote: Quote) -> None:
        """Savings Plans have no dry run: the quote is the rehearsal."""

    def purchase(self, client: Any, key: str, item: Mapping[str, Any], quote: Quote) -> str:
        arguments: dict[str, Any] = {
            "savingsPlanOfferingId": quote.offering_id,
            "commitment": str(commitment(item)),
            "clientToken": str(key_uuid(key)),
            "tags": {TAG_KEY: key},
        }
        if payment_option(item) == "Partial Upfront" and quote.upfront is not None:
            arguments["upfrontPaymentAmount"] = str(quote.upfront.quantize(Decimal(1)))
        answer = buy(
            "savingsplans:CreateSavingsPlan", lambda: client.create_savings_plan(**arguments)
        )
        return str(answer["savingsPlanId"])

    def find(
        self, client: Any, key: str, item: Mapping[str, Any], since: datetime | None = None
    ) -> str | None:
        def fetch(token: str | None) -> Page:
            extra = {"nextToken": token} if token else {}
            answer = call(
                "savingsplans:DescribeSavingsPlans",
                lambda: client.describe_savings_plans(maxResults=100, **extra),
            )
            return answer.get("savingsPlans", []), answer.get("nextToken")

        for plan in pages(fetch, "Savings Plans"):
            if (plan.get("tags") or {}).get(TAG_KEY) == key:
                return str(plan["savingsPlanId"])
        return None
