"""The AWS provider's default clients (boto3's own chain and retry mode) against the local
EC2 endpoint, reached through `AWS_ENDPOINT_URL`: throttling is retried by botocore, a
purchase is found again through its tag, a purchase whose answer was lost is not re-sent
(its outcome is unknown), and `find` given the claim time recognises the untagged
reservation that purchase bought, and nothing older or of another kind."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from app.providers import LookupFailed, OutcomeUnknown, PurchaseFailed
from app.providers.aws import AwsProvider
from tests.support.aws_endpoint import Ec2Endpoint, offering
from tests.unit.providers.test_aws_stubs import ACCOUNT, KEY

ITEM = {
    "provider": "aws",
    "service": "ec2",
    "region": "us-east-1",
    "count": 3,
    "term_years": 1,
    "payment_option": "no-upfront",
    "resource_type": "m5.large",
}


def _point_boto3_at(url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Ec2Endpoint]:
    with Ec2Endpoint() as running:
        _point_boto3_at(running.url, monkeypatch, tmp_path)
        yield running


def test_throttling_is_retried_by_botocore_then_succeeds(endpoint: Ec2Endpoint) -> None:
    endpoint.throttle = 2

    quote = AwsProvider().quote(ITEM, ACCOUNT)

    assert quote.offering_id == "ri-offer-m5large-1y-no"
    assert str(quote.recurring_monthly) == "153.30"  # 0.07 an hour, 730 hours, 3 instances
    assert endpoint.state()["actions"] == ["DescribeReservedInstancesOfferings"] * 3


def test_a_purchase_is_found_again_through_its_tag(endpoint: Ec2Endpoint) -> None:
    provider = AwsProvider()
    endpoint.throttle = 1  # the purchase itself is throttled once: AWS did nothing, retry

    bought = provider.purchase(KEY, ITEM, ACCOUNT, provider.quote(ITEM, ACCOUNT))

    assert endpoint.purchases == 1
    assert endpoint.reservations[bought] | {"start": "?"} == {
        "offering": "ri-offer-m5large-1y-no",
        "count": 3,
        "tags": {"ccp:idempotency-key": KEY},
        "state": "active",
        "start": "?",
    }
    assert provider.find(KEY, ITEM, ACCOUNT) == bought
    assert provider.find(f"{KEY}-other", ITEM, ACCOUNT) is None


def test_a_purchase_whose_answer_is_lost_is_not_sent_again(endpoint: Ec2Endpoint) -> None:
    provider = AwsProvider()
    quote = provider.quote(ITEM, ACCOUNT)
    endpoint.lose_purchase_responses = 1

    with pytest.raises(OutcomeUnknown, match=r"^outcome unknown: .*looks the purchase up"):
        provider.purchase(KEY, ITEM, ACCOUNT, quote)

    assert endpoint.purchases == 1
    assert endpoint.state()["actions"].count("PurchaseReservedInstancesOffering") == 1
    assert "CreateTags" not in endpoint.state()["actions"]


def test_the_untagged_purchase_of_a_lost_answer_is_found_since_the_claim_and_tagged(
    endpoint: Ec2Endpoint,
) -> None:
    provider = AwsProvider()
    endpoint.offerings.append(offering("ri-offer-c5large-1y-no", "c5.large", "No Upfront", 1))
    claimed = datetime.now(UTC)
    older = endpoint.add_reservation(
        "ri-offer-m5large-1y-no", 3, start=claimed - timedelta(minutes=6)
    )
    other_type = endpoint.add_reservation("ri-offer-c5large-1y-no", 3)
    other_count = endpoint.add_reservation("ri-offer-m5large-1y-no", 2)
    other_key = endpoint.add_reservation(
        "ri-offer-m5large-1y-no", 3, tags={"ccp:idempotency-key": "another:0"}
    )
    failed = endpoint.add_reservation("ri-offer-m5large-1y-no", 3, state="payment-failed")
    quote = provider.quote(ITEM, ACCOUNT)
    endpoint.lose_purchase_responses = 1
    with pytest.raises(OutcomeUnknown):
        provider.purchase(KEY, ITEM, ACCOUNT, quote)
    (lost,) = set(endpoint.reservations) - {older, other_type, other_count, other_key, failed}

    assert provider.find(KEY, ITEM, ACCOUNT, since=claimed) == lost
    assert endpoint.reservations[lost]["tags"] == {"ccp:idempotency-key": KEY}
    assert provider.find(KEY, ITEM, ACCOUNT) == lost  # by its tag from now on
    assert endpoint.purchases == 1
    untouched = (older, other_type, other_count, failed)
    assert all(endpoint.reservations[rid]["tags"] == {} for rid in untouched)


def test_nothing_bought_since_the_claim_is_not_found(endpoint: Ec2Endpoint) -> None:
    claimed = datetime.now(UTC)
    endpoint.add_reservation("ri-offer-m5large-1y-no", 3, start=claimed - timedelta(minutes=6))

    assert AwsProvider().find(KEY, ITEM, ACCOUNT, since=claimed) is None
    assert "CreateTags" not in endpoint.state()["actions"]


def test_a_filter_ec2_does_not_know_is_refused_as_ec2_refuses_it(endpoint: Ec2Endpoint) -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    with pytest.raises(ec2.exceptions.ClientError, match="InvalidParameterValue"):
        ec2.describe_reserved_instances(Filters=[{"Name": "instance-count", "Values": ["3"]}])


def test_the_dry_run_buys_nothing(endpoint: Ec2Endpoint) -> None:
    quote = AwsProvider().rehearse(ITEM, ACCOUNT)

    assert quote.offering_id == "ri-offer-m5large-1y-no"
    assert endpoint.purchases == 0
    assert endpoint.state()["actions"][-1] == "PurchaseReservedInstancesOffering"


def test_a_denied_purchase_buys_nothing(endpoint: Ec2Endpoint) -> None:
    provider = AwsProvider()
    quote = provider.quote(ITEM, ACCOUNT)
    endpoint.deny = {"PurchaseReservedInstancesOffering"}

    with pytest.raises(PurchaseFailed, match=r"^IAM denied: ec2:PurchaseReservedInstancesOffering"):
        provider.purchase(KEY, ITEM, ACCOUNT, quote)
    assert endpoint.purchases == 0


def test_a_failing_lookup_is_lookup_failed(endpoint: Ec2Endpoint) -> None:
    endpoint.describe_error = "InvalidParameterValue"

    with pytest.raises(LookupFailed, match=r"ec2:DescribeReservedInstances failed"):
        AwsProvider().find(KEY, ITEM, ACCOUNT)


def test_the_endpoint_runs_as_its_own_process_with_a_state_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    state = tmp_path / "ec2.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.aws_endpoint", "--port", "0", "--state", str(state)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        _point_boto3_at(url, monkeypatch, tmp_path)
        provider = AwsProvider()

        bought = provider.purchase(KEY, ITEM, ACCOUNT, provider.quote(ITEM, ACCOUNT))

        with urllib.request.urlopen(f"{url}/_state") as answer:  # noqa: S310 (loopback)
            served = json.load(answer)
        assert served["purchases"] == 1
        assert served["reservations"][bought]["tags"] == {"ccp:idempotency-key": KEY}
        assert json.loads(state.read_text())["purchases"] == 1
    finally:
        process.terminate()
        process.wait(timeout=10)
