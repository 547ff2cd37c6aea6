"""EC2 through botocore's Stubber: `find` given when the key was claimed recognises an
untagged reservation bought since then (and tags it), and nothing else; a purchase whose
answer was lost raises `OutcomeUnknown` and is neither re-sent nor tagged."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import (
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from app.providers import LookupFailed, OutcomeUnknown, ProviderError, PurchaseFailed, Quote
from app.providers.aws.common import ambiguous
from tests.unit.providers.test_aws_ec2 import ITEM, TAGGED
from tests.unit.providers.test_aws_stubs import ACCOUNT, KEY, provider_with

CLAIMED = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
BY_TAG = {"Filters": [{"Name": "tag:ccp:idempotency-key", "Values": [KEY]}]}
BY_WHAT_IT_IS = {
    "Filters": [
        {"Name": "instance-type", "Values": ["m5.large"]},
        {"Name": "product-description", "Values": ["Linux/UNIX"]},
        {"Name": "duration", "Values": ["31536000"]},
        {"Name": "scope", "Values": ["Region"]},
        {"Name": "state", "Values": ["payment-pending", "active"]},
    ],
    "OfferingClass": "standard",
    "OfferingType": "Partial Upfront",
}


def reservation(rid: str, start: datetime, **changes: Any) -> dict[str, Any]:
    return {
        "ReservedInstancesId": rid,
        "InstanceType": "m5.large",
        "ProductDescription": "Linux/UNIX",
        "InstanceTenancy": "default",
        "OfferingClass": "standard",
        "OfferingType": "Partial Upfront",
        "Duration": 31_536_000,
        "Scope": "Region",
        "InstanceCount": 2,
        "State": "active",
        "Start": start,
        "Tags": [],
        **changes,
    }


def stub_lookup(reservations: list[dict[str, Any]], **expected: Any) -> tuple[Any, Any, Any]:
    provider, clients = provider_with()
    ec2 = clients.stub("ec2", "eu-west-1")
    ec2.add_response("describe_reserved_instances", {"ReservedInstances": []}, BY_TAG)
    ec2.add_response(
        "describe_reserved_instances",
        {"ReservedInstances": reservations},
        expected or BY_WHAT_IT_IS,
    )
    return provider, clients, ec2


def test_an_untagged_reservation_bought_since_the_claim_is_ours_and_gets_the_tag() -> None:
    not_ours = [
        reservation("ri-before", CLAIMED - timedelta(minutes=6)),  # bought before the claim
        reservation("ri-three", CLAIMED + timedelta(minutes=1), InstanceCount=3),
        reservation("ri-dedicated", CLAIMED + timedelta(minutes=1), InstanceTenancy="dedicated"),
        reservation(
            "ri-other-key",
            CLAIMED + timedelta(minutes=1),
            Tags=[{"Key": "ccp:idempotency-key", "Value": "another:0"}],
        ),
    ]
    ours = reservation("ri-ours", CLAIMED - timedelta(minutes=4))  # within the clock skew
    later = reservation("ri-later", CLAIMED + timedelta(minutes=2))
    provider, clients, ec2 = stub_lookup([*not_ours, later, ours])
    ec2.add_response("create_tags", {}, {**TAGGED, "Resources": ["ri-ours"]})

    assert provider.find(KEY, ITEM, ACCOUNT, since=CLAIMED) == "ri-ours"
    clients.done()


def test_a_naive_claim_time_is_read_as_utc() -> None:
    provider, clients, ec2 = stub_lookup([reservation("ri-ours", CLAIMED)])
    ec2.add_response("create_tags", {}, {**TAGGED, "Resources": ["ri-ours"]})

    assert provider.find(KEY, ITEM, ACCOUNT, since=CLAIMED.replace(tzinfo=None)) == "ri-ours"
    clients.done()


def test_nothing_bought_since_the_claim_is_none_and_tags_nothing() -> None:
    no_start = {k: v for k, v in reservation("ri-no-start", CLAIMED).items() if k != "Start"}
    provider, clients, _ = stub_lookup(
        [reservation("ri-old", CLAIMED - timedelta(minutes=6)), no_start]
    )

    assert provider.find(KEY, ITEM, ACCOUNT, since=CLAIMED) is None
    clients.done()  # no CreateTags was expected, and none was made


def test_a_tagged_reservation_is_answered_without_looking_further() -> None:
    provider, clients = provider_with()
    clients.stub("ec2", "eu-west-1").add_response(
        "describe_reserved_instances", {"ReservedInstances": [{"ReservedInstancesId": "ri-1"}]}
    )

    assert provider.find(KEY, ITEM, ACCOUNT, since=CLAIMED) == "ri-1"
    clients.done()


def test_an_item_naming_its_offering_is_recognised_by_the_offerings_fields() -> None:
    provider, clients = provider_with()
    ec2 = clients.stub("ec2", "eu-west-1")
    ec2.add_response("describe_reserved_instances", {"ReservedInstances": []}, BY_TAG)
    ec2.add_response(
        "describe_reserved_instances_offerings",
        {
            "ReservedInstancesOfferings": [
                {
                    "ReservedInstancesOfferingId": "off-win",
                    "InstanceType": "c5.xlarge",
                    "ProductDescription": "Windows",
                    "InstanceTenancy": "default",
                    "OfferingClass": "convertible",
                    "OfferingType": "No Upfront",
                    "Duration": 94_608_000,
                    "Scope": "Availability Zone",
                    "AvailabilityZone": "eu-west-1a",
                }
            ]
        },
        {"ReservedInstancesOfferingIds": ["off-win"]},
    )
    ec2.add_response(
        "describe_reserved_instances",
        {"ReservedInstances": []},
        {
            "Filters": [
                {"Name": "instance-type", "Values": ["c5.xlarge"]},
                {"Name": "product-description", "Values": ["Windows"]},
                {"Name": "duration", "Values": ["94608000"]},
                {"Name": "scope", "Values": ["Availability Zone"]},
                {"Name": "state", "Values": ["payment-pending", "active"]},
                {"Name": "availability-zone", "Values": ["eu-west-1a"]},
            ],
            "OfferingClass": "convertible",
            "OfferingType": "No Upfront",
        },
    )

    assert provider.find(KEY, {**ITEM, "offering_id": "off-win"}, ACCOUNT, since=CLAIMED) is None
    clients.done()


def test_a_recognised_reservation_that_cannot_be_tagged_is_still_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider, clients, ec2 = stub_lookup([reservation("ri-ours", CLAIMED)])
    ec2.add_client_error("create_tags", "UnauthorizedOperation", "not authorized", 403)

    with caplog.at_level(logging.WARNING, logger="app.providers.aws.ec2"):
        assert provider.find(KEY, ITEM, ACCOUNT, since=CLAIMED) == "ri-ours"
    assert "ri-ours" in caplog.text and "IAM denied: ec2:CreateTags" in caplog.text
    clients.done()


def test_a_failing_second_lookup_is_lookup_failed() -> None:
    provider, clients = provider_with()
    ec2 = clients.stub("ec2", "eu-west-1")
    ec2.add_response("describe_reserved_instances", {"ReservedInstances": []}, BY_TAG)
    ec2.add_client_error("describe_reserved_instances", "UnauthorizedOperation", "no", 403)

    with pytest.raises(LookupFailed, match="IAM denied: ec2:DescribeReservedInstances"):
        provider.find(KEY, ITEM, ACCOUNT, since=CLAIMED)
    clients.done()


@pytest.mark.parametrize(("status", "code"), [(500, "InternalError"), (503, "Unavailable")])
def test_a_lost_purchase_answer_is_outcome_unknown_and_nothing_is_tagged(
    status: int, code: str
) -> None:
    provider, clients = provider_with()
    clients.stub("ec2", "eu-west-1").add_client_error(
        "purchase_reserved_instances_offering", code, "oops", status
    )

    with pytest.raises(OutcomeUnknown) as unknown:
        provider.purchase(KEY, ITEM, ACCOUNT, Quote("off-1"))
    assert not isinstance(unknown.value, ProviderError)  # the executor keeps the claim
    assert str(unknown.value).startswith(
        "outcome unknown: ec2:PurchaseReservedInstancesOffering got no clear answer"
    )
    assert "A retry looks the purchase up at AWS first" in str(unknown.value)
    clients.done()  # one purchase, no CreateTags


def test_throttling_that_lasts_is_a_refusal_not_an_unknown_outcome() -> None:
    provider, clients = provider_with()
    clients.stub("ec2", "eu-west-1").add_client_error(
        "purchase_reserved_instances_offering", "RequestLimitExceeded", "slow down", 503
    )

    with pytest.raises(PurchaseFailed, match=r"^throttled: ec2:PurchaseReservedInstancesOffering"):
        provider.purchase(KEY, ITEM, ACCOUNT, Quote("off-1"))


@pytest.mark.parametrize(
    ("error", "may_have_bought"),
    [
        (EndpointConnectionError(endpoint_url="https://ec2"), False),
        (ReadTimeoutError(endpoint_url="https://ec2"), True),
        (ConnectionClosedError(endpoint_url="https://ec2"), True),
    ],
)
def test_only_a_failure_after_the_request_left_may_have_bought(
    error: Exception, may_have_bought: bool
) -> None:
    assert ambiguous(error) is may_have_bought
