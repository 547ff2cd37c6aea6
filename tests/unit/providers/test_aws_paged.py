"""OpenSearch, Redshift and Savings Plans through botocore's Stubber: the offering walks
(OpenSearch and Redshift take no filters), Savings Plans' typed filters, each purchase's
token or chosen name, and `find` over capped pages (Redshift's find: test_aws_redshift)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.providers import LookupFailed, PurchaseFailed, Quote, key_name, key_uuid
from tests.unit.providers.test_aws_stubs import ACCOUNT, KEY, provider_with

NAME = key_name(KEY)
OFFERING_ID = "3f2b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
BOUGHT = "11111111-2222-3333-4444-555555555555"
SEARCH = {
    "provider": "aws",
    "service": "opensearch",
    "region": "eu-west-1",
    "count": 2,
    "term_years": 1,
    "payment_option": "no-upfront",
    "resource_type": "r6g.large.search",
}
SEARCH_OFFERING = {
    "ReservedInstanceOfferingId": OFFERING_ID,
    "InstanceType": "r6g.large.search",
    "Duration": 31_536_000,
    "FixedPrice": 0.0,
    "UsagePrice": 0.0,
    "CurrencyCode": "USD",
    "PaymentOption": "NO_UPFRONT",
    "RecurringCharges": [{"RecurringChargeAmount": 0.1, "RecurringChargeFrequency": "Hourly"}],
}
REDSHIFT = {**SEARCH, "service": "redshift", "resource_type": "ra3.xlplus"}
PLAN = {
    "provider": "aws",
    "service": "savingsplans",
    "region": "eu-west-1",
    "count": 1,
    "term_years": 3,
    "payment_option": "partial-upfront",
    "plan_type": "EC2Instance",
    "instance_family": "m5",
    "hourly_commitment": "1.5",
}


def test_opensearch_quote_walks_the_pages_for_the_matching_offering() -> None:
    provider, clients = provider_with()
    search = clients.stub("opensearch", "eu-west-1")
    other = {**SEARCH_OFFERING, "InstanceType": "m6g.large.search"}
    search.add_response(
        "describe_reserved_instance_offerings",
        {"ReservedInstanceOfferings": [other], "NextToken": "p2"},
        {"MaxResults": 100},
    )
    search.add_response(
        "describe_reserved_instance_offerings",
        {"ReservedInstanceOfferings": [SEARCH_OFFERING]},
        {"MaxResults": 100, "NextToken": "p2"},
    )

    quote = provider.quote(SEARCH, ACCOUNT)

    assert (quote.offering_id, quote.recurring_monthly) == (OFFERING_ID, Decimal("146.00"))
    clients.done()


def test_opensearch_quote_stops_at_the_page_cap() -> None:
    provider, clients = provider_with()
    search = clients.stub("opensearch", "eu-west-1")
    for page in range(10):
        search.add_response(
            "describe_reserved_instance_offerings",
            {"ReservedInstanceOfferings": [], "NextToken": f"t{page + 1}"},
        )

    with pytest.raises(PurchaseFailed, match=r"^page cap: OpenSearch offerings"):
        provider.quote(SEARCH, ACCOUNT)


def test_opensearch_purchase_names_the_reservation_after_the_key() -> None:
    provider, clients = provider_with()
    clients.stub("opensearch", "eu-west-1").add_response(
        "purchase_reserved_instance_offering",
        {"ReservedInstanceId": BOUGHT, "ReservationName": NAME},
        {"ReservedInstanceOfferingId": OFFERING_ID, "ReservationName": NAME, "InstanceCount": 2},
    )

    bought = provider.purchase(KEY, SEARCH, ACCOUNT, Quote(OFFERING_ID))

    assert bought == BOUGHT
    clients.done()


def test_opensearch_find_walks_the_reservations_for_the_name() -> None:
    provider, clients = provider_with()
    search = clients.stub("opensearch", "eu-west-1")
    search.add_response(
        "describe_reserved_instances",
        {"ReservedInstances": [{"ReservationName": "someone-else"}], "NextToken": "p2"},
        {"MaxResults": 100},
    )
    search.add_response(
        "describe_reserved_instances",
        {"ReservedInstances": [{"ReservationName": NAME, "ReservedInstanceId": BOUGHT}]},
        {"MaxResults": 100, "NextToken": "p2"},
    )

    assert provider.find(KEY, SEARCH, ACCOUNT) == BOUGHT
    clients.done()


def test_opensearch_find_answers_none_when_no_page_has_the_name() -> None:
    provider, clients = provider_with()
    clients.stub("opensearch", "eu-west-1").add_response(
        "describe_reserved_instances", {"ReservedInstances": [{"ReservationName": "other"}]}
    )

    assert provider.find(KEY, SEARCH, ACCOUNT) is None


def test_opensearch_find_past_the_page_cap_is_lookup_failed() -> None:
    provider, clients = provider_with()
    search = clients.stub("opensearch", "eu-west-1")
    for page in range(10):
        search.add_response(
            "describe_reserved_instances",
            {"ReservedInstances": [], "NextToken": f"t{page + 1}"},
        )

    with pytest.raises(LookupFailed, match=r"^page cap: OpenSearch reserved instances"):
        provider.find(KEY, SEARCH, ACCOUNT)


def test_opensearch_denied_purchase_names_the_es_action() -> None:
    provider, clients = provider_with()
    clients.stub("opensearch", "eu-west-1").add_client_error(
        "purchase_reserved_instance_offering", "AccessDeniedException", "no", 403
    )

    with pytest.raises(PurchaseFailed, match=r"^IAM denied: es:PurchaseReservedInstanceOffering"):
        provider.purchase(KEY, SEARCH, ACCOUNT, Quote(OFFERING_ID))


def test_redshift_quote_and_purchase_and_its_capacity_error() -> None:
    provider, clients = provider_with()
    redshift = clients.stub("redshift", "eu-west-1")
    offering = {
        "ReservedNodeOfferingId": "rs-off",
        "NodeType": "ra3.xlplus",
        "Duration": 31_536_000,
        "FixedPrice": 0.0,
        "UsagePrice": 0.0,
        "CurrencyCode": "USD",
        "OfferingType": "No Upfront",
        "ReservedNodeOfferingType": "Regular",
        "RecurringCharges": [{"RecurringChargeAmount": 0.5, "RecurringChargeFrequency": "Hourly"}],
    }
    upgrade = {
        **offering,
        "ReservedNodeOfferingId": "rs-up",
        "ReservedNodeOfferingType": "Upgradable",
    }
    redshift.add_response(
        "describe_reserved_node_offerings",
        {"ReservedNodeOfferings": [upgrade, offering]},
        {"MaxRecords": 100},
    )
    redshift.add_response(
        "purchase_reserved_node_offering",
        {"ReservedNode": {"ReservedNodeId": "rn-1"}},
        {"ReservedNodeOfferingId": "rs-off", "NodeCount": 2},
    )
    redshift.add_client_error(
        "purchase_reserved_node_offering", "InsufficientCapacity", "none left", 400
    )

    quote = provider.quote(REDSHIFT, ACCOUNT)
    assert (quote.offering_id, quote.recurring_monthly) == ("rs-off", Decimal("730.00"))
    assert provider.purchase(KEY, REDSHIFT, ACCOUNT, quote) == "rn-1"
    with pytest.raises(PurchaseFailed, match=r"^insufficient capacity: redshift:"):
        provider.purchase(KEY, REDSHIFT, ACCOUNT, quote)
    clients.done()


# The typed search the Savings Plans item `PLAN` makes, and the offering it finds.
PLAN_SEARCH = {
    "planTypes": ["EC2Instance"],
    "durations": [94_608_000],
    "paymentOptions": ["Partial Upfront"],
    "currencies": ["USD"],
    "filters": [
        {"name": "region", "values": ["eu-west-1"]},
        {"name": "instanceFamily", "values": ["m5"]},
    ],
    "maxResults": 100,
}
PLAN_OFFERING = {"offeringId": "sp-off", "paymentOption": "Partial Upfront"}


def test_savings_plans_quote_sends_the_typed_filters_in_us_east_1() -> None:
    provider, clients = provider_with()
    clients.stub("savingsplans", "us-east-1").add_response(
        "describe_savings_plans_offerings", {"searchResults": [PLAN_OFFERING]}, PLAN_SEARCH
    )

    quote = provider.quote(PLAN, ACCOUNT)

    assert clients.asked == [("savingsplans", "us-east-1")]
    assert quote.term_total == Decimal("39420.00")  # 1.5 an hour over 26,280 hours
    assert quote.upfront == Decimal("19710.00")
    assert quote.recurring_monthly == Decimal("547.50")
    clients.done()


def test_savings_plans_purchase_carries_the_token_and_the_tag() -> None:
    provider, clients = provider_with()
    clients.stub("savingsplans", "us-east-1").add_response(
        "create_savings_plan",
        {"savingsPlanId": "sp-1"},
        {
            "savingsPlanOfferingId": "sp-off",
            "commitment": "1.5",
            "upfrontPaymentAmount": "19710",
            "clientToken": str(key_uuid(KEY)),
            "tags": {"ccp:idempotency-key": KEY},
        },
    )

    quote = Quote("sp-off", upfront=Decimal("19710.00"))
    assert provider.purchase(KEY, PLAN, ACCOUNT, quote) == "sp-1"
    clients.done()


def test_savings_plans_find_looks_for_the_tag_and_past_the_cap_fails() -> None:
    provider, clients = provider_with()
    plans = clients.stub("savingsplans", "us-east-1")
    plans.add_response(
        "describe_savings_plans",
        {"savingsPlans": [{"savingsPlanId": "sp-1", "tags": {"ccp:idempotency-key": KEY}}]},
        {"maxResults": 100},
    )
    plans.add_response("describe_savings_plans", {"savingsPlans": [{"savingsPlanId": "sp-2"}]})
    for page in range(10):
        plans.add_response("describe_savings_plans", {"savingsPlans": [], "nextToken": f"t{page}"})

    assert provider.find(KEY, PLAN, ACCOUNT) == "sp-1"
    assert provider.find(KEY, PLAN, ACCOUNT) is None
    with pytest.raises(LookupFailed, match=r"^page cap: Savings Plans"):
        provider.find(KEY, PLAN, ACCOUNT)
    clients.done()


def test_savings_plans_refusals_say_why() -> None:
    provider, clients = provider_with()
    plans = clients.stub("savingsplans", "us-east-1")
    plans.add_client_error("create_savings_plan", "ServiceQuotaExceededException", "max", 402)
    plans.add_client_error("describe_savings_plans_offerings", "AccessDeniedException", "no", 403)

    with pytest.raises(PurchaseFailed, match=r"^quota exceeded: savingsplans:CreateSavingsPlan"):
        provider.purchase(KEY, PLAN, ACCOUNT, Quote("sp-off", upfront=Decimal(1)))
    with pytest.raises(PurchaseFailed, match=r"^IAM denied: savingsplans:DescribeSavingsPlansOff"):
        provider.quote(PLAN, ACCOUNT)


def test_a_commitment_with_over_five_decimals_is_refused_before_any_call() -> None:
    provider, clients = provider_with()

    with pytest.raises(PurchaseFailed, match="over five decimals"):
        provider.quote({**PLAN, "hourly_commitment": "0.123456"}, ACCOUNT)
    clients.done()
