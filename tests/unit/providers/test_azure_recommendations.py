"""Azure's reservation recommendations through azure-core's HTTP transport: what the
consumption SDK asked ARM (one filtered listing per reserved resource type, pages
followed and capped), the items made of both answer shapes, and the failures."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from app.domain.items import check_item, creation_problem
from app.domain.providers import PurchaseMode
from app.providers import AccountTarget, PurchaseFailed
from app.providers.azure.recommendations import MAX_PAGES, RECOMMENDED_TYPES, SOURCE
from tests.unit.providers.test_azure_fakes import (
    ACCOUNT,
    ARM,
    SUBSCRIPTION,
    TOKEN,
    Answer,
    FakeArm,
    arm_error,
    azure,
    network_down,
)

PATH = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Consumption/reservationRecommendations"
TYPES = list(RECOMMENDED_TYPES.values())


def legacy(sku: str = "Standard_D2s_v3", term: str = "P1Y", **properties: Any) -> dict[str, Any]:
    return {
        "kind": "legacy",
        "id": f"{PATH}/{sku}-{term}",
        "name": f"{sku}-{term}",
        "location": "eastus",
        "sku": sku,
        "properties": {
            "scope": "Single",
            "lookBackPeriod": "Last30Days",
            "term": term,
            "resourceType": "virtualmachines",
            "recommendedQuantity": 2,
            "costWithNoReservedInstances": 300.0,
            "totalCostWithReservedInstances": 180.0,
            "netSavings": 120.0,
            "totalHours": 720,
            **properties,
        },
    }


def modern(sku: str = "SQLDB_GP_Compute_Gen5", **properties: Any) -> dict[str, Any]:
    return {
        "kind": "modern",
        "id": f"{PATH}/{sku}",
        "name": sku,
        "properties": {
            "scope": "Single",
            "location": "westeurope",
            "skuName": sku,
            "lookBackPeriod": 7,
            "term": "P1Y",
            "resourceType": "sqldatabases",
            "recommendedQuantity": 4,
            "totalCostWithReservedInstances": {"currency": "EUR", "value": 73.0},
            "netSavings": {"currency": "EUR", "value": 14.6},
            **properties,
        },
    }


def page(*entries: dict[str, Any], next_link: str | None = None) -> Answer:
    return Answer(200, {"value": list(entries), **({"nextLink": next_link} if next_link else {})})


def empty_pages(count: int) -> list[Answer]:
    return [page() for _ in range(count)]


def test_each_resource_type_is_listed_filtered_and_its_pages_followed():
    more = f"{ARM}{PATH}?api-version=2024-08-01&$skiptoken=abc"
    arm = FakeArm(
        page(legacy(), next_link=more),
        page(legacy("Standard_B2s", totalHours=0, lookBackPeriod="Last7Days")),
        page(modern()),
        *empty_pages(len(TYPES) - 2),
    )

    items = azure(arm).recommendations(ACCOUNT)

    first, following, sql = arm.seen[:3]
    assert (first.method, first.path) == ("GET", PATH)
    assert first.query["$filter"] == (
        "properties/scope eq 'Single' and properties/resourceType eq 'VirtualMachines' "
        "and properties/lookBackPeriod eq 'Last30Days'"
    )
    assert first.query["api-version"]
    assert following.query["$skiptoken"] == "abc"
    assert "properties/resourceType eq 'SQLDatabases'" in sql.query["$filter"]
    assert [seen.query["$filter"].split("'")[3] for seen in arm.seen[2:]] == TYPES[1:]
    assert all(seen.authorization == f"Bearer {TOKEN}" for seen in arm.seen)

    vm, small, database = items
    assert vm == {
        "provider": "azure",
        "service": "vm",
        "region": "eastus",
        "resource_type": "Standard_D2s_v3",
        "engine": "",
        "account_id": SUBSCRIPTION,
        "count": 2,
        "term_years": 1,
        "payment_option": "no-upfront",
        "upfront_cost": "0.00",
        # 180 over 720 hours, and 120 over 720 hours, for a 730-hour month.
        "monthly_cost": "182.50",
        "monthly_savings": "121.67",
        "currency": "USD",
        "sku": "Standard_D2s_v3",
        "location": "eastus",
        "scope": "Single",
        "selected": True,
        "source": SOURCE,
    }
    # No hours given: the look-back period's (7 days).
    assert Decimal(small["monthly_savings"]) == (Decimal(120) / 168 * 730).quantize(Decimal("0.01"))
    assert (database["service"], database["currency"], database["count"]) == ("sql", "EUR", 4)
    assert database["monthly_savings"] == "63.44"  # 14.6 over 7 days
    for item in items:
        check_item(item, "azure")
        assert creation_problem([item], PurchaseMode.LIVE, "azure") is None


def test_one_sku_for_two_terms_selects_only_the_one_year_item():
    arm = FakeArm(page(legacy(term="P3Y"), legacy(term="P1Y")), *empty_pages(len(TYPES) - 1))
    three, one = azure(arm).recommendations(ACCOUNT)
    assert (three["term_years"], three["selected"]) == (3, False)
    assert (one["term_years"], one["selected"]) == (1, True)


def test_a_listing_stops_at_the_page_cap():
    link = f"{ARM}{PATH}?api-version=2024-08-01&$skiptoken=more"
    arm = FakeArm(
        *[page(legacy(), next_link=link) for _ in range(MAX_PAGES)], *empty_pages(len(TYPES) - 1)
    )
    items = azure(arm).recommendations(ACCOUNT)
    assert len(items) == MAX_PAGES
    assert len(arm.seen) == MAX_PAGES + len(TYPES) - 1


def test_no_recommendations_is_no_items():
    arm = FakeArm(*empty_pages(len(TYPES)))
    assert azure(arm).recommendations(ACCOUNT) == []
    assert len(arm.seen) == len(TYPES)


def test_a_refusal_names_the_permission():
    denied = arm_error(
        403,
        "AuthorizationFailed",
        "The client does not have authorization to perform action "
        "'Microsoft.Consumption/reservationRecommendations/read' over scope",
    )
    with pytest.raises(PurchaseFailed, match=r"^IAM denied: Microsoft.Consumption/reservation"):
        azure(FakeArm(denied)).recommendations(ACCOUNT)


def test_an_unreachable_azure_is_said_after_the_retries():
    arm = FakeArm(network_down(), network_down(), network_down())
    with pytest.raises(PurchaseFailed, match=r"^Azure unreachable"):
        azure(arm).recommendations(ACCOUNT)
    assert len(arm.seen) == 3  # the first try and retry_total=2


def test_an_account_without_a_subscription_is_refused_before_any_request():
    arm = FakeArm()
    account = AccountTarget(name="nosub", provider="azure")
    with pytest.raises(PurchaseFailed, match="has no Azure subscription id"):
        azure(arm).recommendations(account)
    assert arm.seen == []
