"""What an item must say before a cloud can quote or buy it, and redrive safety by mode
and service."""

from __future__ import annotations

from typing import Any

import pytest

from app.domain.items import check_item, recommendations_problem
from app.domain.providers import PurchaseMode
from app.domain.purchasing import outcome, price_refusal, quoted
from app.domain.retry import RetryPolicy, persistent_hint, retry_refusal
from app.domain.statuses import Status
from tests.factories import ec2_item
from tests.unit.domain.fakes import Row, user

LIVE = PurchaseMode.LIVE

EC2 = {
    key: value
    for key, value in ec2_item(term_years=3, payment_option="partial-upfront").items()
    if key not in ("upfront_cost", "monthly_savings")
}
VALID = {
    "ec2": EC2,
    "ec2 in a zone": {**EC2, "scope": "Availability Zone", "availability_zone": "us-east-1a"},
    "rds": {**EC2, "service": "rds", "engine": "postgresql", "multi_az": True},
    "elasticache": {**EC2, "service": "elasticache", "engine": "redis"},
    "memorydb": {**EC2, "service": "memorydb"},
    "opensearch": {**EC2, "service": "opensearch"},
    "redshift": {**EC2, "service": "redshift", "offering_id": "off-123", "max_price": "9000"},
    "compute savings plan": {
        "provider": "aws",
        "service": "savings-plans",
        "plan_type": "Compute",
        "hourly_commitment": "2.5",
        "count": 1,
        "term_years": 1,
        "payment_option": "no-upfront",
    },
    "ec2 instance savings plan": {
        "provider": "aws",
        "service": "savingsplans",
        "plan_type": "EC2Instance",
        "hourly_commitment": 1,
        "instance_family": "m5",
        "region": "eu-west-1",
        "count": 1,
        "term_years": 3,
        "payment_option": "all-upfront",
    },
    "azure vm": {
        "provider": "azure",
        "service": "vm",
        "sku": "Standard_D2s_v3",
        "location": "westeurope",
        "scope": "Shared",
        "count": 4,
        "term_years": 1,
        "payment_option": "no-upfront",
    },
    "gcp compute": {
        "provider": "gcp",
        "service": "compute",
        "region": "europe-west1",
        "resources": [{"type": "VCPU", "amount": 8}, {"type": "MEMORY", "amount": 32768}],
        "count": 1,
        "term_years": 3,
        "payment_option": "no-upfront",
    },
}


@pytest.mark.parametrize("item", VALID.values(), ids=VALID.keys())
def test_an_item_with_what_its_service_needs_is_accepted(item):
    check_item(item, item["provider"])
    assert recommendations_problem([item], LIVE, item["provider"]) is None


@pytest.mark.parametrize(
    ("base", "change", "field"),
    [
        ("ec2", {"count": 0}, "count"),
        ("ec2", {"count": True}, "count"),
        ("ec2", {"count": "2"}, "count"),
        ("ec2", {"term_years": 2}, "term_years"),
        ("ec2", {"payment_option": "monthly"}, "payment_option"),
        ("ec2", {"tenancy": "host"}, "tenancy"),
        ("ec2", {"scope": "Availability Zone"}, "availability_zone"),
        ("ec2", {"offering_class": None}, "offering_class"),
        ("ec2", {"resource_type": ""}, "resource_type"),
        ("ec2", {"resource_type": "x" * 201}, "resource_type"),
        ("ec2", {"service": "lambda"}, "service"),
        ("ec2", {"provider": "gcp"}, "provider"),
        ("ec2", {"max_price": "NaN"}, "max_price"),
        ("ec2", {"max_price": -1}, "max_price"),
        ("ec2", {"offering_id": 7}, "offering_id"),
        ("rds", {"engine": None}, "engine"),
        ("rds", {"multi_az": "yes"}, "multi_az"),
        ("compute savings plan", {"plan_type": "Lambda"}, "plan_type"),
        ("compute savings plan", {"hourly_commitment": "0"}, "hourly_commitment"),
        ("ec2 instance savings plan", {"instance_family": None}, "instance_family"),
        ("azure vm", {"payment_option": "partial-upfront"}, "payment_option"),
        ("azure vm", {"sku": None}, "sku"),
        ("azure vm", {"location": None}, "location"),
        ("azure vm", {"scope": "Everywhere"}, "scope"),
        ("gcp compute", {"payment_option": "all-upfront"}, "payment_option"),
        ("gcp compute", {"resources": []}, "resources"),
        ("gcp compute", {"resources": [{"type": "GPU", "amount": 1}]}, "resources[0].type"),
        ("gcp compute", {"resources": [{"type": "VCPU", "amount": 0}]}, "resources[0].amount"),
    ],
)
def test_the_first_unusable_field_is_named(base, change, field):
    item = {**VALID[base], **change}
    problem = recommendations_problem([VALID[base], item], LIVE, VALID[base]["provider"])
    assert problem is not None
    assert problem.startswith(f"malformed recommendations: item 1: field '{field}':")


def test_items_the_simulator_buys_and_items_not_selected_are_not_checked():
    sloppy = {"provider": "aws", "count": "lots"}
    assert recommendations_problem([sloppy], PurchaseMode.SIMULATE, "aws") is None
    assert recommendations_problem([{**sloppy, "selected": False}], LIVE, "aws") is None
    assert recommendations_problem([sloppy], PurchaseMode.DRY_RUN, "aws") is not None


def test_a_malformed_item_on_a_live_account_refuses_the_retry_naming_the_field():
    row = Row(recommendations=[{**EC2, "term_years": 5}], account_mode=LIVE)
    refusal = retry_refusal(user(), row, RetryPolicy(), force=True)
    assert refusal is not None and refusal.status == 409
    assert "field 'term_years'" in refusal.details["failure_reason"]
    assert persistent_hint(row, RetryPolicy()) == refusal.details["ops_hint"]


def redrivable_only(*allowed: tuple[PurchaseMode, str, str]):
    def redrivable(mode: PurchaseMode, provider: str, service: str) -> bool:
        return (mode, provider, service) in allowed or (not service and provider == "aws")

    return redrivable


def test_redrive_safety_asks_the_provider_about_each_items_service_in_the_accounts_mode():
    policy = RetryPolicy(redrivable=redrivable_only((LIVE, "aws", "ec2")))
    ec2 = Row(recommendations=[EC2], account_mode=LIVE)
    rds = Row(recommendations=[EC2, {**EC2, "service": "rds"}], account_mode=LIVE)
    simulated = Row(recommendations=[EC2], account_mode=PurchaseMode.SIMULATE)

    assert retry_refusal(user(), ec2, policy, force=False) is None
    for row in (rds, simulated):
        refusal = retry_refusal(user(), row, policy, force=True)
        assert refusal is not None and refusal.details["redrive_unsafe"] is True


def test_a_price_above_the_limit_is_refused_and_an_unknown_price_cannot_be_checked():
    quote = {"offering_id": "o", "currency": "USD", "term_total": "1200.00"}
    assert price_refusal({"max_price": 1200}, quote) is None
    assert price_refusal({}, quote) is None
    assert price_refusal({"max_price": "1199.99"}, quote) == (
        "price above the item's limit: 1200.00 USD over the term, max_price 1199.99"
    )
    unknown = {"offering_id": "o", "currency": "USD", "term_total": None}
    assert price_refusal({"max_price": 10}, unknown).startswith("price unknown")


def test_a_row_of_quoted_items_is_complete_and_one_not_reached_is_not():
    quote = {"offering_id": "o", "term_total": "1.00", "currency": "USD"}
    done: list[dict[str, Any]] = [quoted(EC2, quote), quoted(EC2, quote)]
    assert outcome(done) == (Status.COMPLETED, None)
    status, error = outcome([quoted(EC2, quote), dict(EC2)])
    assert status is Status.PARTIALLY_COMPLETED and error == "1 of 2 purchases failed: not run"


def test_a_successor_does_not_inherit_its_predecessors_quote():
    from app.domain.retry import fresh_recommendations

    bought = {**EC2, "purchased": True, "purchase_id": "ri-1", "quote": {"offering_id": "o"}}
    (fresh,) = fresh_recommendations([bought])
    assert "quote" not in fresh and fresh["purchased"] is False
    assert bought["quote"] == {"offering_id": "o"}
