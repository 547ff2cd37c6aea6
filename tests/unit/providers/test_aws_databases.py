"""RDS, ElastiCache and MemoryDB through botocore's Stubber: each quote's typed filters,
the purchase under the caller-chosen id derived from the key (and tagged with it), `find`
by that id, and what each failure says."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from app.providers import LookupFailed, OutcomeUnknown, PurchaseFailed, Quote, key_name
from tests.unit.providers.test_aws_stubs import ACCOUNT, KEY, provider_with

NAME = key_name(KEY)
TAGS = [{"Key": "ccp:idempotency-key", "Value": KEY}]
CHARGES = [{"RecurringChargeAmount": 0.1, "RecurringChargeFrequency": "Hourly"}]


@dataclass(frozen=True)
class Case:
    service: str
    item: dict[str, Any]
    list_offerings: str
    offerings_key: str
    filters: dict[str, Any]
    offering: dict[str, Any]
    buy: str
    bought: dict[str, Any]
    bought_params: dict[str, Any]
    already: str
    describe: str
    described: dict[str, Any]
    describe_params: dict[str, Any]
    absent: str
    action: str
    next_field: str


BASE = {"provider": "aws", "region": "eu-west-1", "count": 2, "term_years": 3}
CASES = [
    Case(
        service="rds",
        item={
            **BASE,
            "service": "rds",
            "payment_option": "all-upfront",
            "resource_type": "db.r6g.large",
            "engine": "mysql",
            "multi_az": True,
        },
        list_offerings="describe_reserved_db_instances_offerings",
        offerings_key="ReservedDBInstancesOfferings",
        filters={
            "DBInstanceClass": "db.r6g.large",
            "ProductDescription": "mysql",
            "Duration": "94608000",
            "OfferingType": "All Upfront",
            "MultiAZ": True,
            "MaxRecords": 100,
        },
        offering={
            "ReservedDBInstancesOfferingId": "rds-off",
            "FixedPrice": 1000.0,
            "UsagePrice": 0.0,
            "RecurringCharges": CHARGES,
            "CurrencyCode": "USD",
        },
        buy="purchase_reserved_db_instances_offering",
        bought={"ReservedDBInstance": {"ReservedDBInstanceId": NAME}},
        bought_params={
            "ReservedDBInstancesOfferingId": "rds-off",
            "ReservedDBInstanceId": NAME,
            "DBInstanceCount": 2,
            "Tags": TAGS,
        },
        already="ReservedDBInstanceAlreadyExists",
        describe="describe_reserved_db_instances",
        described={"ReservedDBInstances": [{"ReservedDBInstanceId": NAME}]},
        describe_params={"ReservedDBInstanceId": NAME},
        absent="ReservedDBInstanceNotFound",
        action="rds:PurchaseReservedDBInstancesOffering",
        next_field="Marker",
    ),
    Case(
        service="elasticache",
        item={
            **BASE,
            "service": "elasticache",
            "payment_option": "all-upfront",
            "resource_type": "cache.r6g.large",
            "engine": "redis",
        },
        list_offerings="describe_reserved_cache_nodes_offerings",
        offerings_key="ReservedCacheNodesOfferings",
        filters={
            "CacheNodeType": "cache.r6g.large",
            "ProductDescription": "redis",
            "Duration": "94608000",
            "OfferingType": "All Upfront",
            "MaxRecords": 100,
        },
        offering={
            "ReservedCacheNodesOfferingId": "ec-off",
            "FixedPrice": 1000.0,
            "UsagePrice": 0.0,
            "RecurringCharges": CHARGES,
        },
        buy="purchase_reserved_cache_nodes_offering",
        bought={"ReservedCacheNode": {"ReservedCacheNodeId": NAME}},
        bought_params={
            "ReservedCacheNodesOfferingId": "ec-off",
            "ReservedCacheNodeId": NAME,
            "CacheNodeCount": 2,
            "Tags": TAGS,
        },
        already="ReservedCacheNodeAlreadyExists",
        describe="describe_reserved_cache_nodes",
        described={"ReservedCacheNodes": [{"ReservedCacheNodeId": NAME}]},
        describe_params={"ReservedCacheNodeId": NAME},
        absent="ReservedCacheNodeNotFound",
        action="elasticache:PurchaseReservedCacheNodesOffering",
        next_field="Marker",
    ),
    Case(
        service="memorydb",
        item={
            **BASE,
            "service": "memorydb",
            "payment_option": "all-upfront",
            "resource_type": "db.r6g.large",
        },
        list_offerings="describe_reserved_nodes_offerings",
        offerings_key="ReservedNodesOfferings",
        filters={
            "NodeType": "db.r6g.large",
            "Duration": "94608000",
            "OfferingType": "All Upfront",
            "MaxResults": 100,
        },
        offering={
            "ReservedNodesOfferingId": "mdb-off",
            "FixedPrice": 1000.0,
            "RecurringCharges": CHARGES,
        },
        buy="purchase_reserved_nodes_offering",
        bought={"ReservedNode": {"ReservationId": NAME}},
        bought_params={
            "ReservedNodesOfferingId": "mdb-off",
            "ReservationId": NAME,
            "NodeCount": 2,
            "Tags": TAGS,
        },
        already="ReservedNodeAlreadyExistsFault",
        describe="describe_reserved_nodes",
        described={"ReservedNodes": [{"ReservationId": NAME}]},
        describe_params={"ReservationId": NAME},
        absent="ReservedNodeNotFoundFault",
        action="memorydb:PurchaseReservedNodesOffering",
        next_field="NextToken",
    ),
]
each = pytest.mark.parametrize("case", CASES, ids=[c.service for c in CASES])


def _offering_id(case: Case) -> str:
    return str(next(v for k, v in case.offering.items() if k.endswith("OfferingId")))


@each
def test_quote_sends_the_typed_filters_and_prices_the_whole_count(case: Case) -> None:
    provider, clients = provider_with()
    clients.stub(case.service, "eu-west-1").add_response(
        case.list_offerings, {case.offerings_key: [case.offering]}, case.filters
    )

    quote = provider.quote(case.item, ACCOUNT)

    clients.done()
    assert quote.offering_id == _offering_id(case)
    assert quote.upfront == Decimal("2000.00")
    assert quote.recurring_monthly == Decimal("146.00")  # 0.1 an hour, 730 hours, 2 nodes
    assert quote.term_total == Decimal("2000.00") + Decimal("146.00") * 36


@each
def test_no_offering_is_offering_not_found(case: Case) -> None:
    provider, clients = provider_with()
    clients.stub(case.service, "eu-west-1").add_response(
        case.list_offerings, {case.offerings_key: []}, case.filters
    )

    with pytest.raises(PurchaseFailed, match=r"^offering not found: .*\.r6g\.large"):
        provider.quote(case.item, ACCOUNT)


@each
def test_the_offering_search_stops_at_the_page_cap(case: Case) -> None:
    provider, clients = provider_with()
    stub = clients.stub(case.service, "eu-west-1")
    for page in range(10):
        expected = {**case.filters, case.next_field: f"t{page}"} if page else case.filters
        stub.add_response(
            case.list_offerings, {case.offerings_key: [], case.next_field: f"t{page + 1}"}, expected
        )

    with pytest.raises(PurchaseFailed, match=r"^page cap: "):
        provider.quote(case.item, ACCOUNT)
    clients.done()


@each
def test_purchase_names_the_reservation_after_the_key_and_tags_it(case: Case) -> None:
    provider, clients = provider_with()
    clients.stub(case.service, "eu-west-1").add_response(case.buy, case.bought, case.bought_params)

    assert provider.purchase(KEY, case.item, ACCOUNT, Quote(_offering_id(case))) == NAME
    clients.done()


@each
def test_a_purchase_sent_again_answers_the_reservation_bought_first(case: Case) -> None:
    provider, clients = provider_with()
    stub = clients.stub(case.service, "eu-west-1")
    stub.add_client_error(case.buy, case.already, "already exists", 400)
    stub.add_response(case.describe, case.described, case.describe_params)

    assert provider.purchase(KEY, case.item, ACCOUNT, Quote(_offering_id(case))) == NAME
    clients.done()


@each
@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        ("AccessDenied", "IAM denied: {action} is not allowed (AccessDenied)"),
        ("InsufficientCapacity", "insufficient capacity: {action}"),
        ("Throttling", "throttled: {action}"),
    ],
)
def test_a_refused_purchase_says_why(case: Case, code: str, meaning: str) -> None:
    provider, clients = provider_with()
    clients.stub(case.service, "eu-west-1").add_client_error(case.buy, code, "no", 400)

    with pytest.raises(PurchaseFailed) as refused:
        provider.purchase(KEY, case.item, ACCOUNT, Quote(_offering_id(case)))
    assert str(refused.value).startswith(meaning.format(action=case.action))


@each
def test_find_describes_the_chosen_id(case: Case) -> None:
    provider, clients = provider_with()
    clients.stub(case.service, "eu-west-1").add_response(
        case.describe, case.described, case.describe_params
    )

    assert provider.find(KEY, case.item, ACCOUNT) == NAME
    clients.done()


@each
def test_find_answers_none_when_aws_has_no_such_id(case: Case) -> None:
    provider, clients = provider_with()
    clients.stub(case.service, "eu-west-1").add_client_error(
        case.describe, case.absent, "not found", 404, expected_params=case.describe_params
    )

    assert provider.find(KEY, case.item, ACCOUNT) is None
    clients.done()


@each
def test_a_failed_lookup_is_lookup_failed(case: Case) -> None:
    provider, clients = provider_with()
    clients.stub(case.service, "eu-west-1").add_client_error(
        case.describe, "AccessDeniedException", "no", 403
    )

    with pytest.raises(LookupFailed, match=r"^IAM denied: "):
        provider.find(KEY, case.item, ACCOUNT)


@each
def test_a_lost_purchase_answer_is_outcome_unknown(case: Case) -> None:
    provider, clients = provider_with()
    clients.stub(case.service, "eu-west-1").add_client_error(case.buy, "InternalError", "?", 500)

    with pytest.raises(OutcomeUnknown, match=rf"^outcome unknown: {case.action} got no clear"):
        provider.purchase(KEY, case.item, ACCOUNT, Quote(_offering_id(case)))
    clients.done()
