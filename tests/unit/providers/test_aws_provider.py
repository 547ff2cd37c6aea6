"""The AWS provider as the executor sees it: constructed with no credentials and no
network, which services it can find, the item it refuses, and `check`."""

from __future__ import annotations

import pytest

import app.providers.aws as aws
from app.providers import PurchaseFailed, Quote
from app.providers.aws import REQUIRED_ACTIONS, AwsProvider
from tests.unit.providers.test_aws_stubs import ACCOUNT, KEY, provider_with

IDENTITY = {
    "UserId": "AROAEXAMPLE:ccp",
    "Account": "123456789012",
    "Arn": "arn:aws:sts::123456789012:assumed-role/ccp/x",
}


def test_constructing_the_default_provider_needs_no_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)

    provider = AwsProvider()

    assert provider.name == "aws"


def test_it_can_find_every_service_it_buys_but_no_unknown_one() -> None:
    provider = AwsProvider()

    services = ("ec2", "rds", "elasticache", "memorydb", "opensearch", "redshift", "savingsplans")
    assert all(provider.can_find(service) for service in (*services, "sp"))
    assert not provider.can_find("lightsail")


@pytest.mark.parametrize(
    ("item", "meaning"),
    [
        ({"service": "lightsail", "region": "eu-west-1"}, "AWS purchasing has no service"),
        ({"service": "ec2"}, "the item has no region"),
        ({"service": "ec2", "region": "eu-west-1", "term_years": 2}, "term_years must be 1 or 3"),
    ],
)
def test_an_item_it_cannot_buy_is_refused_before_any_call(
    item: dict[str, object], meaning: str
) -> None:
    provider, clients = provider_with()

    with pytest.raises(PurchaseFailed, match=meaning):
        provider.quote(
            {"provider": "aws", "count": 1, "payment_option": "no-upfront", **item}, ACCOUNT
        )
    with pytest.raises(PurchaseFailed):
        provider.purchase(KEY, {"service": "lightsail", "region": "x"}, ACCOUNT, Quote("o"))
    clients.done()


def test_check_proves_the_identity_and_one_cheap_read() -> None:
    provider, clients = provider_with()
    clients.stub("sts").add_response("get_caller_identity", IDENTITY, {})
    clients.stub("ec2").add_response(
        "describe_reserved_instances_offerings",
        {"ReservedInstancesOfferings": []},
        {"MaxResults": 5},
    )

    report = provider.check(ACCOUNT)

    assert report.ok
    assert report.message == "connected as arn:aws:sts::123456789012:assumed-role/ccp/x"
    clients.done()


def test_check_denied_lists_the_actions_the_role_needs() -> None:
    provider, clients = provider_with()
    clients.stub("sts").add_response("get_caller_identity", IDENTITY, {})
    clients.stub("ec2").add_client_error(
        "describe_reserved_instances_offerings", "UnauthorizedOperation", "no", 403
    )

    report = provider.check(ACCOUNT)

    assert not report.ok
    assert report.missing == REQUIRED_ACTIONS
    assert report.message.startswith(
        "IAM denied: ec2:DescribeReservedInstancesOfferings is not allowed (UnauthorizedOperation)"
    )
    assert "ec2:PurchaseReservedInstancesOffering" in report.message


def test_check_with_rejected_credentials_says_so_and_lists_nothing() -> None:
    provider, clients = provider_with()
    clients.stub("sts").add_client_error("get_caller_identity", "InvalidClientTokenId", "bad", 403)

    report = provider.check(ACCOUNT)

    assert (report.ok, report.missing) == (False, ())
    assert report.message.startswith("credentials rejected: sts:GetCallerIdentity")


def test_the_package_docstring_lists_every_required_action() -> None:
    assert all(f"`{action}`" in (aws.__doc__ or "") for action in REQUIRED_ACTIONS)
