"""Lost outcomes through botocore's Stubber: Redshift's `find` recognises a reserved node
of the item's offering and count started since the key was claimed (and says it cannot
tell without the claim time); Redshift, OpenSearch and Savings Plans purchases whose
answer was lost raise `OutcomeUnknown`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.providers import LookupFailed, OutcomeUnknown, Quote
from tests.unit.providers.test_aws_paged import PLAN, REDSHIFT, SEARCH
from tests.unit.providers.test_aws_stubs import ACCOUNT, KEY, provider_with

CLAIMED = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
OFFERING = {
    "ReservedNodeOfferingId": "rs-off",
    "NodeType": "ra3.xlplus",
    "Duration": 31_536_000,
    "OfferingType": "No Upfront",
    "ReservedNodeOfferingType": "Regular",
}


def node(node_id: str, start: datetime, **changes: Any) -> dict[str, Any]:
    return {
        "ReservedNodeId": node_id,
        "ReservedNodeOfferingId": "rs-off",
        "NodeType": "ra3.xlplus",
        "NodeCount": 2,
        "State": "active",
        "StartTime": start,
        **changes,
    }


def test_a_node_of_the_offering_and_count_started_since_the_claim_is_ours() -> None:
    provider, clients = provider_with()
    redshift = clients.stub("redshift", "eu-west-1")
    redshift.add_response(
        "describe_reserved_node_offerings",
        {"ReservedNodeOfferings": [OFFERING]},
        {"MaxRecords": 100},
    )
    after = CLAIMED + timedelta(minutes=1)
    redshift.add_response(
        "describe_reserved_nodes",
        {
            "ReservedNodes": [
                node("rn-before", CLAIMED - timedelta(minutes=6)),
                node("rn-other-offering", after, ReservedNodeOfferingId="rs-other"),
                node("rn-three", after, NodeCount=3),
            ],
            "Marker": "page-2",
        },
        {"MaxRecords": 100},
    )
    redshift.add_response(
        "describe_reserved_nodes",
        {
            "ReservedNodes": [
                node("rn-failed", after, State="payment-failed"),
                node("rn-later", CLAIMED + timedelta(minutes=2)),
                node("rn-ours", CLAIMED - timedelta(minutes=4), State="payment-pending"),
            ]
        },
        {"MaxRecords": 100, "Marker": "page-2"},
    )

    assert provider.find(KEY, REDSHIFT, ACCOUNT, since=CLAIMED) == "rn-ours"
    clients.done()


def test_an_item_naming_its_offering_is_looked_up_without_a_search() -> None:
    provider, clients = provider_with()
    clients.stub("redshift", "eu-west-1").add_response(
        "describe_reserved_nodes",
        {"ReservedNodes": [node("rn-1", CLAIMED, ReservedNodeOfferingId="rs-named")]},
        {"MaxRecords": 100},
    )

    item = {**REDSHIFT, "offering_id": "rs-named"}
    assert provider.find(KEY, item, ACCOUNT, since=CLAIMED) == "rn-1"
    clients.done()


def test_no_node_bought_since_the_claim_is_none() -> None:
    provider, clients = provider_with()
    clients.stub("redshift", "eu-west-1").add_response(
        "describe_reserved_nodes",
        {"ReservedNodes": [node("rn-old", CLAIMED - timedelta(hours=1))]},
        {"MaxRecords": 100},
    )

    assert provider.find(KEY, {**REDSHIFT, "offering_id": "rs-off"}, ACCOUNT, since=CLAIMED) is None
    clients.done()


def test_without_the_claim_time_redshift_cannot_tell_and_asks_aws_nothing() -> None:
    provider, clients = provider_with()

    assert provider.can_find("redshift") is True
    with pytest.raises(LookupFailed, match="check the account's reserved nodes by hand"):
        provider.find(KEY, REDSHIFT, ACCOUNT)
    clients.done()
    assert clients.asked == [("redshift", "eu-west-1")]  # a client, but no request


def test_a_redshift_lookup_past_the_page_cap_is_lookup_failed() -> None:
    provider, clients = provider_with()
    redshift = clients.stub("redshift", "eu-west-1")
    for page in range(10):
        redshift.add_response(
            "describe_reserved_nodes",
            {"ReservedNodes": [], "Marker": f"m{page + 1}"},
            {"MaxRecords": 100, **({"Marker": f"m{page}"} if page else {})},
        )

    with pytest.raises(LookupFailed, match=r"^page cap: Redshift reserved nodes"):
        provider.find(KEY, {**REDSHIFT, "offering_id": "rs-off"}, ACCOUNT, since=CLAIMED)
    clients.done()


@pytest.mark.parametrize(
    ("item", "service", "operation", "action"),
    [
        (
            REDSHIFT,
            "redshift",
            "purchase_reserved_node_offering",
            "redshift:PurchaseReservedNodeOffering",
        ),
        (
            SEARCH,
            "opensearch",
            "purchase_reserved_instance_offering",
            "es:PurchaseReservedInstanceOffering",
        ),
        (PLAN, "savingsplans", "create_savings_plan", "savingsplans:CreateSavingsPlan"),
    ],
)
def test_a_lost_purchase_answer_is_outcome_unknown(
    item: dict[str, Any], service: str, operation: str, action: str
) -> None:
    provider, clients = provider_with()
    region = "us-east-1" if service == "savingsplans" else "eu-west-1"
    clients.stub(service, region).add_client_error(operation, "InternalFailure", "?", 500)

    with pytest.raises(OutcomeUnknown, match=rf"^outcome unknown: {action} got no clear answer"):
        provider.purchase(KEY, item, ACCOUNT, Quote("3f2b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"))
    clients.done()
