"""EC2 Reserved Instances through botocore's Stubber: the typed filters the quote sends,
the purchase and its tag, `find` by tag, the dry run, and what each failure says."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from app.providers import LookupFailed, PurchaseFailed, Quote
from tests.unit.providers.test_aws_stubs import ACCOUNT, KEY, provider_with

ITEM = {
    "provider": "aws",
    "service": "ec2",
    "region": "eu-west-1",
    "count": 2,
    "term_years": 1,
    "payment_option": "partial-upfront",
    "resource_type": "m5.large",
    "platform": "Linux/UNIX",
    "tenancy": "default",
    "scope": "Region",
    "offering_class": "standard",
}
FILTERS = {
    "InstanceType": "m5.large",
    "ProductDescription": "Linux/UNIX",
    "InstanceTenancy": "default",
    "OfferingClass": "standard",
    "OfferingType": "Partial Upfront",
    "MinDuration": 31_536_000,
    "MaxDuration": 31_536_000,
    "IncludeMarketplace": False,
    "Filters": [{"Name": "scope", "Values": ["Region"]}],
    "MaxResults": 100,
}
OFFERING = {
    "ReservedInstancesOfferingId": "off-1",
    "InstanceType": "m5.large",
    "ProductDescription": "Linux/UNIX",
    "OfferingClass": "standard",
    "OfferingType": "Partial Upfront",
    "FixedPrice": 100.0,
    "UsagePrice": 0.0,
    "RecurringCharges": [{"Frequency": "Hourly", "Amount": 0.05}],
    "CurrencyCode": "USD",
    "Marketplace": False,
}
QUOTE = Quote(offering_id="off-1")
TAGGED = {"Resources": ["ri-1"], "Tags": [{"Key": "ccp:idempotency-key", "Value": KEY}]}


def test_quote_sends_the_typed_filters_and_prices_the_whole_count() -> None:
    provider, clients = provider_with()
    ec2 = clients.stub("ec2", "eu-west-1")
    ec2.add_response(
        "describe_reserved_instances_offerings",
        {"ReservedInstancesOfferings": [OFFERING]},
        FILTERS,
    )

    quote = provider.quote(ITEM, ACCOUNT)

    clients.done()
    assert clients.asked == [("ec2", "eu-west-1")]
    assert quote.offering_id == "off-1"
    assert quote.upfront == Decimal("200.00")
    assert quote.recurring_monthly == Decimal("73.00")  # 0.05 an hour, 730 hours, 2 instances
    assert quote.term_total == Decimal("1076.00")


def test_quote_in_an_availability_zone_names_it() -> None:
    provider, clients = provider_with()
    item = {**ITEM, "scope": "Availability Zone", "availability_zone": "eu-west-1b"}
    clients.stub("ec2", "eu-west-1").add_response(
        "describe_reserved_instances_offerings",
        {"ReservedInstancesOfferings": [OFFERING]},
        {
            **FILTERS,
            "Filters": [{"Name": "scope", "Values": ["Availability Zone"]}],
            "AvailabilityZone": "eu-west-1b",
        },
    )

    assert provider.quote(item, ACCOUNT).offering_id == "off-1"
    clients.done()


def test_quote_skips_marketplace_offerings_across_pages() -> None:
    provider, clients = provider_with()
    ec2 = clients.stub("ec2", "eu-west-1")
    resold = {**OFFERING, "ReservedInstancesOfferingId": "resold", "Marketplace": True}
    ec2.add_response(
        "describe_reserved_instances_offerings",
        {"ReservedInstancesOfferings": [resold], "NextToken": "page-2"},
        FILTERS,
    )
    ec2.add_response(
        "describe_reserved_instances_offerings",
        {"ReservedInstancesOfferings": [OFFERING]},
        {**FILTERS, "NextToken": "page-2"},
    )

    assert provider.quote(ITEM, ACCOUNT).offering_id == "off-1"
    clients.done()


def test_an_offering_id_skips_the_search_but_is_priced() -> None:
    provider, clients = provider_with()
    clients.stub("ec2", "eu-west-1").add_response(
        "describe_reserved_instances_offerings",
        {"ReservedInstancesOfferings": [OFFERING]},
        {"ReservedInstancesOfferingIds": ["off-1"]},
    )

    quote = provider.quote({**ITEM, "offering_id": "off-1"}, ACCOUNT)

    assert (quote.offering_id, quote.upfront) == ("off-1", Decimal("200.00"))
    clients.done()


def test_no_offering_is_offering_not_found_naming_the_search() -> None:
    provider, clients = provider_with()
    clients.stub("ec2", "eu-west-1").add_response(
        "describe_reserved_instances_offerings", {"ReservedInstancesOfferings": []}, FILTERS
    )

    with pytest.raises(PurchaseFailed, match=r"^offering not found: .*InstanceType=m5\.large"):
        provider.quote(ITEM, ACCOUNT)


def test_the_search_stops_at_the_page_cap() -> None:
    provider, clients = provider_with()
    ec2 = clients.stub("ec2", "eu-west-1")
    resold = {**OFFERING, "Marketplace": True}
    for page in range(10):
        ec2.add_response(
            "describe_reserved_instances_offerings",
            {"ReservedInstancesOfferings": [resold], "NextToken": f"t{page + 1}"},
            {**FILTERS, "NextToken": f"t{page}"} if page else FILTERS,
        )

    with pytest.raises(PurchaseFailed, match=r"^page cap: .* more than 10 pages"):
        provider.quote(ITEM, ACCOUNT)
    clients.done()


def test_rehearse_asks_ec2_to_dry_run_the_purchase() -> None:
    provider, clients = provider_with()
    ec2 = clients.stub("ec2", "eu-west-1")
    ec2.add_response(
        "describe_reserved_instances_offerings", {"ReservedInstancesOfferings": [OFFERING]}
    )
    ec2.add_client_error(
        "purchase_reserved_instances_offering",
        "DryRunOperation",
        "Request would have succeeded, but DryRun flag is set.",
        412,
        expected_params={
            "ReservedInstancesOfferingId": "off-1",
            "InstanceCount": 2,
            "DryRun": True,
        },
    )

    assert provider.rehearse(ITEM, ACCOUNT).offering_id == "off-1"
    clients.done()


def test_a_denied_dry_run_names_the_iam_action() -> None:
    provider, clients = provider_with()
    ec2 = clients.stub("ec2", "eu-west-1")
    ec2.add_response(
        "describe_reserved_instances_offerings", {"ReservedInstancesOfferings": [OFFERING]}
    )
    ec2.add_client_error(
        "purchase_reserved_instances_offering", "UnauthorizedOperation", "not authorized", 403
    )

    with pytest.raises(PurchaseFailed) as refused:
        provider.rehearse(ITEM, ACCOUNT)
    assert str(refused.value) == (
        "IAM denied: ec2:PurchaseReservedInstancesOffering is not allowed (UnauthorizedOperation)"
    )


def test_purchase_buys_the_count_and_tags_the_reservation_with_the_key() -> None:
    provider, clients = provider_with()
    ec2 = clients.stub("ec2", "eu-west-1")
    ec2.add_response(
        "purchase_reserved_instances_offering",
        {"ReservedInstancesId": "ri-1"},
        {"ReservedInstancesOfferingId": "off-1", "InstanceCount": 2},
    )
    ec2.add_response("create_tags", {}, TAGGED)

    assert provider.purchase(KEY, ITEM, ACCOUNT, QUOTE) == "ri-1"
    clients.done()


def test_a_reservation_not_yet_visible_is_tagged_when_it_is() -> None:
    provider, clients = provider_with()
    ec2 = clients.stub("ec2", "eu-west-1")
    ec2.add_response("purchase_reserved_instances_offering", {"ReservedInstancesId": "ri-1"})
    ec2.add_client_error("create_tags", "InvalidReservedInstancesId", "no such id", 400)
    ec2.add_response("create_tags", {}, TAGGED)

    assert provider.purchase(KEY, ITEM, ACCOUNT, QUOTE) == "ri-1"
    clients.done()


def test_a_failed_tag_keeps_the_purchase_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    provider, clients = provider_with()
    ec2 = clients.stub("ec2", "eu-west-1")
    ec2.add_response("purchase_reserved_instances_offering", {"ReservedInstancesId": "ri-1"})
    ec2.add_client_error("create_tags", "UnauthorizedOperation", "not authorized", 403)

    with caplog.at_level(logging.WARNING, logger="app.providers.aws.ec2"):
        assert provider.purchase(KEY, ITEM, ACCOUNT, QUOTE) == "ri-1"
    assert "ri-1" in caplog.text
    assert "IAM denied: ec2:CreateTags is not allowed" in caplog.text
    clients.done()


@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        ("InsufficientReservedInstanceCapacity", "insufficient capacity: "),
        ("InvalidReservedInstancesOfferingId", "offering not found: "),
        ("ReservedInstancesLimitExceeded", "quota exceeded: "),
        ("UnauthorizedOperation", "IAM denied: ec2:PurchaseReservedInstancesOffering"),
    ],
)
def test_a_refused_purchase_says_why_and_tags_nothing(code: str, meaning: str) -> None:
    provider, clients = provider_with()
    ec2 = clients.stub("ec2", "eu-west-1")
    ec2.add_client_error("purchase_reserved_instances_offering", code, "refused", 400)

    with pytest.raises(PurchaseFailed) as refused:
        provider.purchase(KEY, ITEM, ACCOUNT, QUOTE)
    assert str(refused.value).startswith(meaning)
    clients.done()  # no CreateTags was expected, and none was made


@pytest.mark.parametrize(
    ("reservations", "found"),
    [([{"ReservedInstancesId": "ri-1"}], "ri-1"), ([], None)],
)
def test_find_looks_the_key_up_by_its_tag(
    reservations: list[dict[str, str]], found: str | None
) -> None:
    provider, clients = provider_with()
    clients.stub("ec2", "eu-west-1").add_response(
        "describe_reserved_instances",
        {"ReservedInstances": reservations},
        {"Filters": [{"Name": "tag:ccp:idempotency-key", "Values": [KEY]}]},
    )

    assert provider.find(KEY, ITEM, ACCOUNT) == found
    clients.done()


@pytest.mark.parametrize(
    ("code", "meaning"),
    [("UnauthorizedOperation", "IAM denied: ec2:DescribeReservedInstances"), ("InternalError", "")],
)
def test_a_failed_lookup_is_lookup_failed(code: str, meaning: str) -> None:
    provider, clients = provider_with()
    clients.stub("ec2", "eu-west-1").add_client_error(
        "describe_reserved_instances", code, "no", 403
    )

    with pytest.raises(LookupFailed, match=meaning or code):
        provider.find(KEY, ITEM, ACCOUNT)
