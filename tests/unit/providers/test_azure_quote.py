"""The Azure provider's quote, dry run and connection check, through azure-core's HTTP
transport: what the SDK asked ARM, and what the provider answered."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.identity import CredentialUnavailableError

from app.providers import PurchaseFailed
from app.providers.azure import MAX_CATALOG_PAGES, AzureProvider
from tests.unit.providers.test_azure_fakes import (
    ACCOUNT,
    ARM,
    BILLED,
    SUBSCRIPTION,
    TOKEN,
    Answer,
    FakeArm,
    arm_error,
    azure,
    catalog,
    priced,
    sku,
)

CATALOG_PATH = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Capacity/catalogs"
ITEM = {
    "provider": "azure",
    "service": "vm",
    "region": "eastus",
    "sku": "standard_d2s_v3",
    "count": 2,
    "term_years": 1,
    "payment_option": "no-upfront",
    "scope": "Single",
}


def test_quote_reads_the_filtered_catalog_and_prices_the_whole_count():
    arm = FakeArm(catalog(sku("Standard_B1s"), sku("Standard_D2s_v3")), priced(1234.5))

    quote = azure(arm).quote(ITEM, ACCOUNT)

    listing, calculation = arm.seen
    assert (listing.method, listing.path) == ("GET", CATALOG_PATH)
    assert listing.query["reservedResourceType"] == "VirtualMachines"
    assert listing.query["location"] == "eastus"
    assert (calculation.method, calculation.url.split("?")[0]) == (
        "POST",
        f"{ARM}/providers/Microsoft.Capacity/calculatePrice",
    )
    assert calculation.body == {
        "sku": {"name": "Standard_D2s_v3"},
        "location": "eastus",
        "properties": {
            "reservedResourceType": "VirtualMachines",
            "billingScopeId": f"/subscriptions/{SUBSCRIPTION}",
            "term": "P1Y",
            "billingPlan": "Monthly",
            "quantity": 2,
            "appliedScopeType": "Single",
            "appliedScopes": [f"/subscriptions/{SUBSCRIPTION}"],
        },
    }
    assert all(seen.authorization == f"Bearer {TOKEN}" for seen in arm.seen)
    assert quote.offering_id == "VirtualMachines/eastus/P1Y/Standard_D2s_v3"
    assert quote.currency == "EUR"
    assert quote.upfront == Decimal("0.00")
    assert quote.recurring_monthly == Decimal("102.88")  # 1234.50 over 12 months
    assert quote.term_total == Decimal("102.88") * 12
    assert "x2" in quote.description


def test_offering_id_skips_the_catalog_and_upfront_pays_the_total_at_once():
    item = {
        **ITEM,
        "offering_id": "VirtualMachines/westeurope/P3Y/Standard_E4s_v5",
        "payment_option": "all-upfront",
        "scope": "Shared",
    }
    arm = FakeArm(priced(3000, "USD"))

    quote = azure(arm).quote(item, BILLED)

    (calculation,) = arm.seen
    assert calculation.body["sku"] == {"name": "Standard_E4s_v5"}
    assert calculation.body["location"] == "westeurope"
    properties = calculation.body["properties"]
    assert (properties["term"], properties["billingPlan"]) == ("P3Y", "Upfront")
    assert properties["appliedScopeType"] == "Shared" and "appliedScopes" not in properties
    assert properties["billingScopeId"] == BILLED.azure_billing_scope
    assert (quote.upfront, quote.recurring_monthly, quote.term_total) == (
        Decimal("3000.00"),
        Decimal("0.00"),
        Decimal("3000.00"),
    )
    assert quote.offering_id == item["offering_id"]


def test_the_catalog_walk_follows_next_link_past_skus_not_sold_for_the_term():
    next_page = f"{ARM}{CATALOG_PATH}?api-version=2022-11-01&$skiptoken=page2"
    arm = FakeArm(
        catalog(sku("Standard_D2s_v3", terms=("P3Y",)), next_link=next_page),
        catalog(sku("Standard_D2s_v3", terms=("P1Y",))),
        priced(600),
    )

    quote = azure(arm).quote(ITEM, ACCOUNT)

    assert arm.methods() == ["GET", "GET", "POST"]
    assert arm.seen[1].url == next_page
    assert quote.offering_id == "VirtualMachines/eastus/P1Y/Standard_D2s_v3"


def test_the_catalog_walk_stops_at_the_page_cap():
    link = f"{ARM}{CATALOG_PATH}?api-version=2022-11-01&$skiptoken=more"
    pages = [catalog(sku(f"Standard_F{n}"), next_link=link) for n in range(MAX_CATALOG_PAGES)]
    arm = FakeArm(*pages)

    with pytest.raises(PurchaseFailed, match=f"offering not found: .*{MAX_CATALOG_PAGES} pages"):
        azure(arm).quote(ITEM, ACCOUNT)

    assert arm.methods() == ["GET"] * MAX_CATALOG_PAGES


def test_no_such_sku_is_offering_not_found_and_nothing_is_priced():
    arm = FakeArm(catalog(sku("Standard_B1s")))

    with pytest.raises(PurchaseFailed) as failure:
        azure(arm).quote(ITEM, ACCOUNT)

    assert str(failure.value) == (
        "offering not found: VirtualMachines standard_d2s_v3 in eastus for P1Y billed Monthly"
    )
    assert arm.methods() == ["GET"]


def test_a_sku_azure_will_not_price_is_offering_not_found():
    arm = FakeArm(
        catalog(sku("Standard_D2s_v3")),
        arm_error(400, "SkuNotAvailable", "Standard_D2s_v3 is not available in eastus"),
    )

    with pytest.raises(PurchaseFailed, match=r"^offering not found: .*SkuNotAvailable"):
        azure(arm).quote(ITEM, ACCOUNT)


def test_rehearse_is_the_quote_and_sends_no_purchase():
    arm = FakeArm(catalog(sku("Standard_D2s_v3")), priced(100))

    quote = azure(arm).rehearse(ITEM, ACCOUNT)

    assert quote.offering_id == "VirtualMachines/eastus/P1Y/Standard_D2s_v3"
    assert arm.methods() == ["GET", "POST"]
    assert "reservationOrders" not in " ".join(seen.url for seen in arm.seen)


@pytest.mark.parametrize("payment_option", ["partial-upfront", ""])
def test_a_payment_azure_does_not_offer_is_refused_before_any_request(payment_option):
    arm = FakeArm()

    with pytest.raises(PurchaseFailed, match=f"not {payment_option!r}"):
        azure(arm).quote({**ITEM, "payment_option": payment_option}, ACCOUNT)

    assert arm.seen == []


def test_throttling_is_retried_after_retry_after_and_then_answers():
    arm = FakeArm(
        arm_error(429, "TooManyRequests", "slow down", **{"Retry-After": "0"}),
        catalog(sku("Standard_D2s_v3")),
        arm_error(429, "TooManyRequests", "slow down", **{"Retry-After": "0"}),
        priced(100),
    )

    quote = azure(arm).quote(ITEM, ACCOUNT)

    assert arm.methods() == ["GET", "GET", "POST", "POST"]
    assert arm.seen[0].url == arm.seen[1].url
    assert quote.upfront == Decimal("0.00") and quote.term_total == Decimal("8.33") * 12


def test_throttling_that_lasts_surfaces_as_throttled():
    throttled = arm_error(429, "TooManyRequests", "slow down", **{"Retry-After": "0"})
    arm = FakeArm(throttled, throttled, throttled)

    with pytest.raises(PurchaseFailed, match=r"^throttled: "):
        azure(arm).quote(ITEM, ACCOUNT)

    assert len(arm.seen) == 3  # the first try and retry_total=2 retries


def test_check_reads_one_catalog_page():
    arm = FakeArm(catalog(sku("Standard_B1s")))

    report = azure(arm).check(ACCOUNT)

    assert report.ok, report.message
    (listing,) = arm.seen
    assert listing.path == CATALOG_PATH
    assert listing.query["reservedResourceType"] == "VirtualMachines"
    assert float(listing.query["$take"]) == 1


def test_check_denied_names_the_permission_azure_refused():
    arm = FakeArm(
        arm_error(
            403,
            "AuthorizationFailed",
            "The client 'ops' with object id '42' does not have authorization to perform "
            f"action 'Microsoft.Capacity/catalogs/read' over scope '/subscriptions/{SUBSCRIPTION}'",
        )
    )

    report = azure(arm).check(ACCOUNT)

    assert not report.ok
    assert report.message == (
        "IAM denied: Microsoft.Capacity/catalogs/read is not allowed (AuthorizationFailed)"
    )
    assert report.missing == ("Microsoft.Capacity/catalogs/read",)


def test_check_without_a_subscription_asks_nothing():
    arm = FakeArm()

    report = azure(arm).check(BILLED.__class__(name="bare", provider="azure"))

    assert not report.ok and "subscription" in report.message
    assert arm.seen == []


def test_can_find_every_service_it_buys_and_nothing_else():
    provider = azure(FakeArm())
    assert provider.can_find("vm") and provider.can_find("cosmosdb")
    assert not provider.can_find("ec2")


def test_a_server_error_answer_is_retried_for_reads():
    arm = FakeArm(Answer(503, {}), catalog(sku("Standard_D2s_v3")), priced(12))

    azure(arm).quote(ITEM, ACCOUNT)

    assert arm.methods() == ["GET", "GET", "POST"]


class NoCredential:
    """A TokenCredential that finds nothing, as DefaultAzureCredential does on a machine
    with no Azure identity."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        raise CredentialUnavailableError("DefaultAzureCredential failed to retrieve a token")


def test_no_credential_says_what_to_give_the_worker_and_sends_nothing():
    arm = FakeArm()
    provider = AzureProvider(credential=NoCredential(), transport=arm)

    with pytest.raises(PurchaseFailed, match=r"^Azure credentials unavailable .*managed identity"):
        provider.quote(ITEM, ACCOUNT)

    assert arm.seen == []
