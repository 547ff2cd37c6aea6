"""Cost Explorer's recommendations through botocore's Stubber (every request checked
against the service model and the parameters expected): one call per reservation service
and per Savings Plan type, the pages walked and capped, the answers turned into items a
live account can buy, and the failures in an operator's words."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from app.domain.items import check_item, creation_problem
from app.domain.providers import PurchaseMode
from app.providers import PurchaseFailed
from app.providers.aws.recommendations import (
    MAX_PAGES,
    RESERVATION_SERVICES,
    SOURCE,
)
from app.providers.aws.reservation_details import rds_engine, region_code
from tests.unit.providers.test_aws_stubs import ACCOUNT, provider_with

QUERY = {
    "TermInYears": "ONE_YEAR",
    "PaymentOption": "NO_UPFRONT",
    "LookbackPeriodInDays": "THIRTY_DAYS",
}
EC2_DETAIL = {
    "AccountId": "123456789012",
    "InstanceDetails": {
        "EC2InstanceDetails": {
            "InstanceType": "m5.large",
            "Region": "US East (N. Virginia)",
            "Platform": "Linux/UNIX",
            "Tenancy": "Shared",
        }
    },
    "RecommendedNumberOfInstancesToPurchase": "3",
    "UpfrontCost": "0",
    "RecurringStandardMonthlyCost": "134.03",
    "EstimatedMonthlySavingsAmount": "76.65",
    "EstimatedMonthlySavingsPercentage": "36.4",
    "CurrencyCode": "USD",
}
RDS_DETAIL = {
    "AccountId": "123456789012",
    "InstanceDetails": {
        "RDSInstanceDetails": {
            "InstanceType": "db.r6g.large",
            "Region": "EU (Ireland)",
            "DatabaseEngine": "Aurora PostgreSQL",
            "DeploymentOption": "Multi-AZ",
        }
    },
    "RecommendedNumberOfInstancesToPurchase": "1",
    "UpfrontCost": "0",
    "RecurringStandardMonthlyCost": "150.5",
    "EstimatedMonthlySavingsAmount": "40",
    "CurrencyCode": "USD",
}
SP_DETAIL = {
    "AccountId": "123456789012",
    "SavingsPlansDetails": {
        "OfferingId": "5a3b-offering",
        "InstanceFamily": "m5",
        "Region": "US West (Oregon)",
    },
    "HourlyCommitmentToPurchase": "1.2345678",
    "UpfrontCost": "0",
    "EstimatedMonthlySavingsAmount": "310.25",
    "EstimatedSavingsPercentage": "22.5",
    "CurrencyCode": "USD",
}


def reservations(*details: dict[str, Any], token: str | None = None, **spec: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "Recommendations": [
            {
                "TermInYears": "ONE_YEAR",
                "PaymentOption": "NO_UPFRONT",
                "RecommendationDetails": list(details),
                **spec,
            }
        ]
        if details
        else []
    }
    if token:
        answer["NextPageToken"] = token
    return answer


def savings_plans(kind: str, *details: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "SavingsPlansPurchaseRecommendation": {
            "SavingsPlansType": kind,
            "TermInYears": "ONE_YEAR",
            "PaymentOption": "NO_UPFRONT",
            "SavingsPlansPurchaseRecommendationDetails": list(details),
        }
    }
    if token:
        answer["NextPageToken"] = token
    return answer


def expect_reservation(
    stub, service: str, answer: dict[str, Any], token: str | None = None
) -> None:
    params = {"Service": RESERVATION_SERVICES[service], "PageSize": 100, **QUERY}
    if token:
        params["NextPageToken"] = token
    stub.add_response("get_reservation_purchase_recommendation", answer, params)


def expect_plan(stub, kind: str, answer: dict[str, Any], token: str | None = None) -> None:
    params = {"SavingsPlansType": kind, "PageSize": 100, **QUERY}
    if token:
        params["NextPageToken"] = token
    stub.add_response("get_savings_plans_purchase_recommendation", answer, params)


def test_every_service_is_asked_once_pages_are_followed_and_items_can_be_bought():
    provider, clients = provider_with()
    ce = clients.stub("ce")
    expect_reservation(
        ce,
        "ec2",
        reservations(
            EC2_DETAIL,
            token="page-2",
            ServiceSpecification={"EC2Specification": {"OfferingClass": "STANDARD"}},
        ),
    )
    expect_reservation(ce, "ec2", reservations(), token="page-2")
    expect_reservation(ce, "rds", reservations(RDS_DETAIL))
    for service in ("elasticache", "opensearch", "redshift", "memorydb"):
        expect_reservation(ce, service, reservations())
    expect_plan(ce, "COMPUTE_SP", savings_plans("COMPUTE_SP"))
    expect_plan(ce, "EC2_INSTANCE_SP", savings_plans("EC2_INSTANCE_SP", SP_DETAIL))

    items = provider.recommendations(ACCOUNT)

    clients.done()
    assert clients.asked == [("ce", "us-east-1")]
    ec2, rds, plan = items
    assert ec2 == {
        "provider": "aws",
        "service": "ec2",
        "region": "us-east-1",
        "resource_type": "m5.large",
        "engine": "",
        "account_id": "123456789012",
        "count": 3,
        "term_years": 1,
        "payment_option": "no-upfront",
        "upfront_cost": "0.00",
        "monthly_cost": "134.03",
        "monthly_savings": "76.65",
        "currency": "USD",
        "savings_percent": "36.40",
        "platform": "Linux/UNIX",
        "tenancy": "default",
        "scope": "Region",
        "offering_class": "standard",
        "selected": True,
        "source": SOURCE,
    }
    assert (rds["region"], rds["engine"], rds["multi_az"]) == (
        "eu-west-1",
        "aurora-postgresql",
        True,
    )
    assert plan["plan_type"] == "EC2Instance" and plan["offering_id"] == "5a3b-offering"
    assert (plan["region"], plan["instance_family"]) == ("us-west-2", "m5")
    assert plan["hourly_commitment"] == "1.23456"  # at most five places, rounded down
    # No upfront: the whole commitment is paid monthly, 730 hours a month.
    assert Decimal(plan["monthly_cost"]) == (Decimal("1.23456") * 730).quantize(Decimal("0.01"))
    for item in items:
        check_item(item, "aws")
        assert creation_problem([item], PurchaseMode.LIVE, "aws") is None


def test_a_walk_stops_at_the_page_cap_and_keeps_what_it_read():
    provider, clients = provider_with()
    ce = clients.stub("ce")
    for page in range(MAX_PAGES):
        expect_reservation(
            ce,
            "ec2",
            reservations(EC2_DETAIL, token=f"t{page + 1}"),
            token=f"t{page}" if page else None,
        )
    for service in ("rds", "elasticache", "opensearch", "redshift", "memorydb"):
        expect_reservation(ce, service, reservations())
    expect_plan(ce, "COMPUTE_SP", savings_plans("COMPUTE_SP"))
    expect_plan(ce, "EC2_INSTANCE_SP", savings_plans("EC2_INSTANCE_SP"))

    items = provider.recommendations(ACCOUNT)

    clients.done()  # and no eleventh page was asked for (the Stubber refuses one)
    assert len(items) == MAX_PAGES


def test_an_empty_answer_is_no_items():
    provider, clients = provider_with()
    ce = clients.stub("ce")
    for service in RESERVATION_SERVICES:
        expect_reservation(ce, service, reservations())
    expect_plan(ce, "COMPUTE_SP", savings_plans("COMPUTE_SP"))
    expect_plan(ce, "EC2_INSTANCE_SP", {})
    assert provider.recommendations(ACCOUNT) == []
    clients.done()


def test_services_without_data_are_skipped_and_all_without_data_is_a_clear_failure():
    provider, clients = provider_with()
    ce = clients.stub("ce")
    for _ in RESERVATION_SERVICES:
        ce.add_client_error(
            "get_reservation_purchase_recommendation", "DataUnavailableException", "no data"
        )
    ce.add_client_error(
        "get_savings_plans_purchase_recommendation", "DataUnavailableException", "no data"
    )
    expect_plan(ce, "EC2_INSTANCE_SP", savings_plans("EC2_INSTANCE_SP", SP_DETAIL))
    [plan] = provider.recommendations(ACCOUNT)
    assert plan["service"] == "savingsplans"

    provider, clients = provider_with()
    ce = clients.stub("ce")
    for _ in range(len(RESERVATION_SERVICES)):
        ce.add_client_error(
            "get_reservation_purchase_recommendation", "DataUnavailableException", "no data"
        )
    for _ in range(2):
        ce.add_client_error(
            "get_savings_plans_purchase_recommendation", "DataUnavailableException", "no data"
        )
    with pytest.raises(PurchaseFailed, match=r"^Cost Explorer has no data for this account yet"):
        provider.recommendations(ACCOUNT)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            "AccessDeniedException",
            r"^IAM denied: ce:GetReservationPurchaseRecommendation is not allowed",
        ),
        ("LimitExceededException", r"^throttled: ce:GetReservationPurchaseRecommendation"),
        (
            "UnrecognizedClientException",
            r"^credentials rejected: ce:GetReservationPurchaseRecommendation",
        ),
    ],
)
def test_refusals_are_in_an_operators_words(code, expected):
    provider, clients = provider_with()
    clients.stub("ce").add_client_error(
        "get_reservation_purchase_recommendation", code, "nope", 400
    )
    with pytest.raises(PurchaseFailed, match=expected):
        provider.recommendations(ACCOUNT)


def test_recommendations_that_cannot_be_bought_are_left_out():
    host = {
        **EC2_DETAIL,
        "InstanceDetails": {
            "EC2InstanceDetails": {
                **EC2_DETAIL["InstanceDetails"]["EC2InstanceDetails"],
                "Tenancy": "Host",
            }
        },
    }
    none = {**EC2_DETAIL, "RecommendedNumberOfInstancesToPurchase": "0.4"}
    tiny = {**SP_DETAIL, "HourlyCommitmentToPurchase": "0.000001"}
    provider, clients = provider_with()
    ce = clients.stub("ce")
    expect_reservation(ce, "ec2", reservations(host, none, EC2_DETAIL))
    for service in ("rds", "elasticache", "opensearch", "redshift", "memorydb"):
        expect_reservation(ce, service, reservations())
    expect_plan(ce, "COMPUTE_SP", savings_plans("COMPUTE_SP", {**tiny, "SavingsPlansDetails": {}}))
    expect_plan(ce, "EC2_INSTANCE_SP", savings_plans("EC2_INSTANCE_SP"))
    [kept] = provider.recommendations(ACCOUNT)
    assert kept["count"] == 3


def test_region_names_and_rds_engines_are_read_as_the_purchase_apis_spell_them():
    assert region_code("US East (Ohio)") == "us-east-2"
    assert region_code("EU (Frankfurt)") == "eu-central-1"
    assert region_code("eu-west-3") == "eu-west-3"
    assert region_code("Mars (Olympus)") == "Mars (Olympus)"
    assert rds_engine({"DatabaseEngine": "MySQL"}) == "mysql"
    assert (
        rds_engine(
            {
                "DatabaseEngine": "Oracle",
                "DatabaseEdition": "Standard Two",
                "LicenseModel": "Bring your own license",
            }
        )
        == "oracle-se2(byol)"
    )
    assert (
        rds_engine(
            {
                "DatabaseEngine": "SQL Server",
                "DatabaseEdition": "Web",
                "LicenseModel": "License included",
            }
        )
        == "sqlserver-web(li)"
    )
