"""AWS's own purchase recommendations, read from Cost Explorer (a global API, reached in
us-east-1), as recommendation items ready to create.

- Reserved capacity: `GetReservationPurchaseRecommendation`, one call per service
  (`RESERVATION_SERVICES`: EC2, RDS, ElastiCache, OpenSearch, Redshift, MemoryDB), each
  walked by `NextPageToken` for at most `MAX_PAGES` pages.
- Savings Plans: `GetSavingsPlansPurchaseRecommendation` for Compute and EC2 Instance
  plans, walked the same way. Each item carries Cost Explorer's `offering_id`, so the
  purchase buys exactly the offering recommended.

Every call asks for one term, payment option and look-back period (`Query`; by default
one year, no upfront, the last 30 days). Cost Explorer answers amounts for the whole
recommended quantity: `UpfrontCost` and `RecurringStandardMonthlyCost` become the item's
`upfront_cost` and `monthly_cost`, `EstimatedMonthlySavingsAmount` its `monthly_savings`.
A Savings Plan's monthly cost is its hourly commitment over a month (730 hours) less what
is paid upfront, spread over the term. Cost Explorer names regions as people read them
("US East (N. Virginia)"); items carry the region's code ("us-east-1"), from botocore's
own table of regions. How each service's reservation is described, as item fields,
lives in `app.providers.aws.reservation_details`.

A recommendation that cannot become an item (no instance count, a dedicated host, a
Savings Plan commitment below a thousandth of a cent) is left out. A service for which
Cost Explorer has no data yet (`DataUnavailableException`), or whose name it refuses
(`ValidationException`, logged), contributes nothing; when no
service has any, the import fails saying so. Past the page cap a service's walk stops and
the items read so far are kept (logged): a thousand recommendations per service is more
than one purchase should hold.

Cost Explorer charges for every request (USD 0.01 at the time of writing): one import
makes at least eight. The role needs `ce:GetReservationPurchaseRecommendation` and
`ce:GetSavingsPlansPurchaseRecommendation`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from functools import partial
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from app.providers import AccountTarget, PurchaseFailed, recommended_item
from app.providers.aws.common import HOURS_PER_MONTH, decimal
from app.providers.aws.errors import error_code, explain
from app.providers.aws.reservation_details import DESCRIBERS, region_code

log = logging.getLogger(__name__)

REGION = "us-east-1"
SOURCE = "aws-cost-explorer"
MAX_PAGES = 10
PAGE_SIZE = 100
RESERVATIONS = "ce:GetReservationPurchaseRecommendation"
SAVINGS_PLANS = "ce:GetSavingsPlansPurchaseRecommendation"
NO_DATA = "DataUnavailableException"
UNKNOWN_SERVICE = "ValidationException"
# Cost Explorer's throttling code; botocore's standard mode has retried it already.
RATE_LIMITED = "LimitExceededException"

# Cost Explorer's name for each service whose reservations it recommends, by item service.
RESERVATION_SERVICES: dict[str, str] = {
    "ec2": "Amazon Elastic Compute Cloud - Compute",
    "rds": "Amazon Relational Database Service",
    "elasticache": "Amazon ElastiCache",
    "opensearch": "Amazon OpenSearch Service",
    "redshift": "Amazon Redshift",
    "memorydb": "Amazon MemoryDB",
}
SAVINGS_PLAN_TYPES: dict[str, str] = {"COMPUTE_SP": "Compute", "EC2_INSTANCE_SP": "EC2Instance"}
_TERMS = {1: "ONE_YEAR", 3: "THREE_YEARS"}
_PAYMENTS = {
    "no-upfront": "NO_UPFRONT",
    "partial-upfront": "PARTIAL_UPFRONT",
    "all-upfront": "ALL_UPFRONT",
}
_LOOKBACKS = ("SEVEN_DAYS", "THIRTY_DAYS", "SIXTY_DAYS")
_COMMITMENT_PLACES = Decimal("0.00001")


@dataclass(frozen=True)
class Query:
    """What every Cost Explorer call asks for: the term (1 or 3 years), the payment option
    (the item's spelling) and the usage period to look back on."""

    term_years: int = 1
    payment_option: str = "no-upfront"
    lookback: str = "THIRTY_DAYS"

    def __post_init__(self) -> None:
        if self.term_years not in _TERMS:
            raise ValueError(f"term_years must be 1 or 3, not {self.term_years!r}")
        if self.payment_option not in _PAYMENTS:
            raise ValueError(f"payment_option must be one of {', '.join(_PAYMENTS)}")
        if self.lookback not in _LOOKBACKS:
            raise ValueError(f"lookback must be one of {', '.join(_LOOKBACKS)}")

    def arguments(self) -> dict[str, Any]:
        return {
            "TermInYears": _TERMS[self.term_years],
            "PaymentOption": _PAYMENTS[self.payment_option],
            "LookbackPeriodInDays": self.lookback,
        }


def recommendations(client: Any, account: AccountTarget, query: Query) -> list[dict[str, Any]]:
    """Every reservation and Savings Plan recommendation Cost Explorer makes for the
    account `client` acts in (a botocore `ce` client), as items."""
    items: list[dict[str, Any]] = []
    answered = 0
    for service, named in RESERVATION_SERVICES.items():
        pages = _walk(
            RESERVATIONS,
            partial(_ask_reservations, client, named, query),
            f"reservation recommendations for {service}",
        )
        found = _read(pages, partial(_reservations, service=service, account=account))
        if found is not None:
            answered += 1
            items.extend(found)
    for plan_type, kind in SAVINGS_PLAN_TYPES.items():
        pages = _walk(
            SAVINGS_PLANS,
            partial(_ask_savings_plans, client, plan_type, query),
            f"{kind} Savings Plans recommendations",
        )
        found = _read(pages, partial(_savings_plans, kind=kind, account=account, query=query))
        if found is not None:
            answered += 1
            items.extend(found)
    if not answered:
        raise PurchaseFailed(
            "Cost Explorer has no data for this account yet (DataUnavailableException): "
            "enable Cost Explorer for it; recommendations appear about a day after"
        )
    return items


def _ask_reservations(
    client: Any, service: str, query: Query, extra: dict[str, Any]
) -> dict[str, Any]:
    return client.get_reservation_purchase_recommendation(
        Service=service, PageSize=PAGE_SIZE, **query.arguments(), **extra
    )


def _ask_savings_plans(
    client: Any, plan_type: str, query: Query, extra: dict[str, Any]
) -> dict[str, Any]:
    return client.get_savings_plans_purchase_recommendation(
        SavingsPlansType=plan_type, PageSize=PAGE_SIZE, **query.arguments(), **extra
    )


def _walk(
    action: str, call: Callable[[dict[str, Any]], dict[str, Any]], what: str
) -> Iterator[dict[str, Any]]:
    """The answer pages of one recommendation call, at most `MAX_PAGES`."""
    token: str | None = None
    for _ in range(MAX_PAGES):
        try:
            page = call({"NextPageToken": token} if token else {})
        except ClientError as error:
            if error_code(error) == NO_DATA:
                raise _NoData from None
            if error_code(error) == UNKNOWN_SERVICE and action == RESERVATIONS:
                # A service this Cost Explorer does not recommend for (a partition that
                # lacks it): nothing to recommend, not a failed import.
                log.warning("Cost Explorer: %s refused: %s", what, error)
                raise _NoData from None
            if error_code(error) == RATE_LIMITED:
                raise PurchaseFailed(
                    f"throttled: {action} ({RATE_LIMITED}) after retries; Cost Explorer "
                    "allows a few requests a second: try again in a minute"
                ) from None
            raise explain(action, error) from None
        except BotoCoreError as error:
            raise explain(action, error) from None
        yield page
        token = page.get("NextPageToken")
        if not token:
            return
    log.warning("Cost Explorer: %s has more than %d pages; the rest is left out", what, MAX_PAGES)


class _NoData(Exception):
    """Cost Explorer has no data for one service's recommendations."""


def _read(
    pages: Iterator[dict[str, Any]], items_of: Callable[[dict[str, Any]], list[dict[str, Any]]]
) -> list[dict[str, Any]] | None:
    """The items of every page, or None when Cost Explorer has no data for them."""
    items: list[dict[str, Any]] = []
    try:
        for page in pages:
            items.extend(items_of(page))
    except _NoData:
        return None
    return items


def _reservations(page: Mapping[str, Any], service: str, account: AccountTarget) -> list[dict]:
    items = []
    for recommendation in page.get("Recommendations") or []:
        term = _term_of(recommendation.get("TermInYears"))
        payment = _payment_of(recommendation.get("PaymentOption"))
        offering_class = str(
            ((recommendation.get("ServiceSpecification") or {}).get("EC2Specification") or {}).get(
                "OfferingClass"
            )
            or "STANDARD"
        ).lower()
        for detail in recommendation.get("RecommendationDetails") or []:
            item = _reservation(detail, service, account, term, payment, offering_class)
            if item is not None:
                items.append(item)
    return items


def _reservation(
    detail: Mapping[str, Any],
    service: str,
    account: AccountTarget,
    term: int | None,
    payment: str | None,
    offering_class: str,
) -> dict[str, Any] | None:
    count = _whole(detail.get("RecommendedNumberOfInstancesToPurchase"))
    described = DESCRIBERS[service](detail.get("InstanceDetails") or {})
    if count < 1 or described is None or term is None or payment is None:
        return None
    if service == "ec2":
        described["offering_class"] = offering_class
    return recommended_item(
        "aws",
        service,
        source=SOURCE,
        account_id=str(detail.get("AccountId") or account.external_id),
        count=count,
        term_years=term,
        payment_option=payment,
        upfront_cost=decimal(detail.get("UpfrontCost")),
        monthly_cost=decimal(detail.get("RecurringStandardMonthlyCost")),
        monthly_savings=decimal(detail.get("EstimatedMonthlySavingsAmount")),
        currency=str(detail.get("CurrencyCode") or "USD"),
        savings_percent=_percent(detail.get("EstimatedMonthlySavingsPercentage")),
        **described,
    )


def _savings_plans(
    page: Mapping[str, Any], kind: str, account: AccountTarget, query: Query
) -> list[dict[str, Any]]:
    recommendation = page.get("SavingsPlansPurchaseRecommendation") or {}
    term = _term_of(recommendation.get("TermInYears")) or query.term_years
    payment = _payment_of(recommendation.get("PaymentOption")) or query.payment_option
    items = []
    for detail in recommendation.get("SavingsPlansPurchaseRecommendationDetails") or []:
        rate = decimal(detail.get("HourlyCommitmentToPurchase")).quantize(
            _COMMITMENT_PLACES, ROUND_DOWN
        )
        if rate <= 0:
            continue
        plan = detail.get("SavingsPlansDetails") or {}
        family = str(plan.get("InstanceFamily") or "") or None
        upfront = decimal(detail.get("UpfrontCost"))
        months = 12 * term
        monthly = (rate * HOURS_PER_MONTH * months - upfront) / months
        items.append(
            recommended_item(
                "aws",
                "savingsplans",
                source=SOURCE,
                account_id=str(detail.get("AccountId") or account.external_id),
                region=region_code(plan.get("Region")) if kind == "EC2Instance" else "",
                resource_type=family if kind == "EC2Instance" and family else kind,
                count=1,
                term_years=term,
                payment_option=payment,
                upfront_cost=upfront,
                monthly_cost=max(monthly, Decimal(0)),
                monthly_savings=decimal(detail.get("EstimatedMonthlySavingsAmount")),
                currency=str(detail.get("CurrencyCode") or "USD"),
                savings_percent=_percent(detail.get("EstimatedSavingsPercentage")),
                plan_type=kind,
                hourly_commitment=str(rate),
                instance_family=family if kind == "EC2Instance" else None,
                offering_id=str(plan.get("OfferingId") or "") or None,
            )
        )
    return items


def _term_of(value: Any) -> int | None:
    return {"ONE_YEAR": 1, "THREE_YEARS": 3}.get(str(value or ""))


def _payment_of(value: Any) -> str | None:
    return {spelled: ours for ours, spelled in _PAYMENTS.items()}.get(str(value or ""))


def _whole(value: Any) -> int:
    """A count Cost Explorer gives as text ("2", "2.0"); a fraction is rounded down."""
    amount = decimal(value)
    return int(amount) if amount >= 1 else 0


def _percent(value: Any) -> str | None:
    if value in (None, ""):
        return None
    return str(decimal(value).quantize(Decimal("0.01")))
