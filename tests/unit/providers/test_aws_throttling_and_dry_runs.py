"""Every AWS service the provider buys, two ways the other tests cover only for some:

- Throttling goes through botocore's own retry loop. The clients are real botocore
  clients with the product's `CONFIG` (standard retries); a `before-send` handler answers
  each attempt in the service's protocol instead of the network, so botocore parses,
  classifies and retries exactly as it would against AWS. Only the backoff's sleep is
  recorded instead of slept (`botocore.endpoint` sleeps what the retry handler computed).
- A dry run (`rehearse`) quotes and buys nothing, through botocore's Stubber, which fails
  on any call that was not stubbed.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import boto3
import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse

from app.providers import AccountTarget, PurchaseFailed, Quote, key_name
from app.providers.aws import AwsProvider
from app.providers.aws.clients import CONFIG
from tests.unit.providers import test_aws_ec2 as ec2
from tests.unit.providers import test_aws_paged as paged
from tests.unit.providers.test_aws_databases import CASES
from tests.unit.providers.test_aws_redshift import OFFERING as REDSHIFT_OFFERING
from tests.unit.providers.test_aws_stubs import ACCOUNT, KEY, provider_with

Answer = tuple[int, dict[str, str], bytes]
NAME = key_name(KEY)
QUOTE = Quote(paged.OFFERING_ID, upfront=Decimal("19710.00"))
XML = {"Content-Type": "text/xml"}
AWS_JSON = "application/x-amz-json-1.1"
REST_JSON = "application/json"


def query_throttled(code: str = "Throttling") -> Answer:
    """A query-protocol throttling answer; EC2's comes in its own envelope, with 503."""
    error = f"<Error><Code>{code}</Code><Message>Rate exceeded</Message></Error>"
    if code == "RequestLimitExceeded":
        return 503, XML, f"<Response><Errors>{error}</Errors></Response>".encode()
    return 400, XML, f"<ErrorResponse>{error}</ErrorResponse>".encode()


def xml(fields: dict[str, Any]) -> str:
    return "".join(f"<{k}>{xml(v) if isinstance(v, dict) else v}</{k}>" for k, v in fields.items())


def query_bought(action: str, result: dict[str, Any]) -> Answer:
    operation = action.split(":")[1]
    body = {f"{operation}Result": result} if not action.startswith("ec2:") else result
    return 200, XML, xml({f"{operation}Response": body}).encode()


def json_answer(status: int, content_type: str, body: dict[str, Any]) -> Answer:
    headers = {"Content-Type": content_type}
    if status >= 400:
        headers["x-amzn-ErrorType"] = str(body["__type"])
    return status, headers, json.dumps(body).encode()


def json_throttled(status: int, content_type: str) -> Answer:
    body = {"__type": "ThrottlingException", "message": "Rate exceeded"}
    return json_answer(status, content_type, body)


@dataclass(frozen=True)
class Purchase:
    item: dict[str, Any]
    action: str
    throttled: Answer
    bought: Answer
    bought_id: str
    after: dict[str, Answer] = field(default_factory=dict)

    @property
    def operation(self) -> str:
        return self.action.split(":")[1]


RDS, ELASTICACHE, MEMORYDB = CASES
EC2_BUY = "ec2:PurchaseReservedInstancesOffering"
PURCHASES = [
    Purchase(
        ec2.ITEM,
        EC2_BUY,
        query_throttled("RequestLimitExceeded"),
        query_bought(EC2_BUY, {"reservedInstancesId": "ri-1"}),
        "ri-1",
        after={"CreateTags": query_bought("ec2:CreateTags", {"return": "true"})},
    ),
    *(
        Purchase(db.item, db.action, query_throttled(), query_bought(db.action, db.bought), NAME)
        for db in (RDS, ELASTICACHE)
    ),
    Purchase(
        MEMORYDB.item,
        MEMORYDB.action,
        json_throttled(400, AWS_JSON),
        json_answer(200, AWS_JSON, MEMORYDB.bought),
        NAME,
    ),
    Purchase(
        paged.SEARCH,
        "es:PurchaseReservedInstanceOffering",
        json_throttled(429, REST_JSON),
        json_answer(200, REST_JSON, {"ReservedInstanceId": paged.BOUGHT, "ReservationName": NAME}),
        paged.BOUGHT,
    ),
    Purchase(
        paged.REDSHIFT,
        "redshift:PurchaseReservedNodeOffering",
        query_throttled(),
        query_bought(
            "redshift:PurchaseReservedNodeOffering", {"ReservedNode": {"ReservedNodeId": "rn-1"}}
        ),
        "rn-1",
    ),
    Purchase(
        paged.PLAN,
        "savingsplans:CreateSavingsPlan",
        json_throttled(400, REST_JSON),
        json_answer(200, REST_JSON, {"savingsPlanId": "sp-1"}),
        "sp-1",
    ),
]
each_purchase = pytest.mark.parametrize(
    "case", PURCHASES, ids=[case.item["service"] for case in PURCHASES]
)


class AnsweringClients:
    """A `client_factory` of real botocore clients with the product's `CONFIG`, whose
    sends are answered by `before-send`: the purchase's `answers` in turn, the last one
    repeating, and the calls after it (`case.after`) with theirs. `sent` lists every
    attempt (operation, request body) in order."""

    def __init__(self, case: Purchase, *answers: Answer) -> None:
        self.answers = {case.operation: list(answers), **{k: [v] for k, v in case.after.items()}}
        self.sent: list[tuple[str, Any]] = []
        self.clients: list[Any] = []
        self.session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing")

    def __call__(self, account: AccountTarget, service_name: str, region: str) -> Any:
        client = self.session.client(  # type: ignore[call-overload]
            service_name, region_name=region, config=CONFIG, endpoint_url="https://aws.invalid"
        )
        service_id = client.meta.service_model.service_id.hyphenize()
        for operation in self.answers:
            client.meta.events.register(
                f"before-send.{service_id}.{operation}", functools.partial(self.answer, operation)
            )
        self.clients.append(client)
        return client

    def answer(self, operation: str, request: Any, **_: Any) -> AWSResponse:
        self.sent.append((operation, request.body))
        queue = self.answers[operation]
        status, headers, body = queue.pop(0) if len(queue) > 1 else queue[0]
        raw = SimpleNamespace(stream=lambda **_: iter([body]))
        return AWSResponse(request.url, status, headers, raw)

    def operations(self) -> list[str]:
        return [operation for operation, _ in self.sent]


def configured_attempts() -> int:
    """The attempts `CONFIG` allows a call: its `max_attempts` counts retries, the first
    attempt comes on top. botocore rewrites the shared `CONFIG.retries` in place to
    `total_max_attempts` (first attempt included) when it builds a client from it."""
    retries = CONFIG.retries
    return int(retries.get("total_max_attempts") or retries["max_attempts"] + 1)


@pytest.fixture
def backoffs(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays botocore's retry handler asked `botocore.endpoint` to sleep."""
    slept: list[float] = []
    monkeypatch.setattr(botocore.endpoint, "time", SimpleNamespace(sleep=slept.append))
    return slept


@each_purchase
def test_a_throttled_purchase_is_retried_by_botocore_and_buys_once(
    case: Purchase, backoffs: list[float]
) -> None:
    clients = AnsweringClients(case, case.throttled, case.bought)

    bought = AwsProvider(client_factory=clients).purchase(KEY, case.item, ACCOUNT, QUOTE)

    assert bought == case.bought_id
    assert clients.operations() == [case.operation, case.operation, *case.after]
    first, again = (body for operation, body in clients.sent if operation == case.operation)
    assert again == first
    assert len(backoffs) == 1
    assert 0 <= backoffs[0] <= 1  # botocore's first throttling backoff: up to 1 s


@each_purchase
def test_throttling_that_lasts_is_throttled_after_botocores_every_attempt(
    case: Purchase, backoffs: list[float]
) -> None:
    clients = AnsweringClients(case, case.throttled)
    provider = AwsProvider(client_factory=clients)

    with pytest.raises(PurchaseFailed) as failed:
        provider.purchase(KEY, case.item, ACCOUNT, QUOTE)

    assert str(failed.value).startswith(f"throttled: {case.action} (")
    attempts = configured_attempts()
    [client] = clients.clients
    assert client.meta.config.retries["total_max_attempts"] == attempts
    assert clients.operations() == [case.operation] * attempts
    assert len(backoffs) == attempts - 1


@dataclass(frozen=True)
class Rehearsal:
    item: dict[str, Any]
    client: tuple[str, str]
    read: tuple[str, dict[str, Any], dict[str, Any]]
    quoted: tuple[str, Decimal, Decimal]
    dry_run: dict[str, Any] | None = None


REDSHIFT_PRICED = {
    **REDSHIFT_OFFERING,
    "FixedPrice": 0.0,
    "RecurringCharges": [{"RecurringChargeAmount": 0.5, "RecurringChargeFrequency": "Hourly"}],
}
REHEARSALS = [
    Rehearsal(
        ec2.ITEM,
        ("ec2", "eu-west-1"),
        (
            "describe_reserved_instances_offerings",
            {"ReservedInstancesOfferings": [ec2.OFFERING]},
            ec2.FILTERS,
        ),
        ("off-1", Decimal("200.00"), Decimal("73.00")),
        dry_run={"ReservedInstancesOfferingId": "off-1", "InstanceCount": 2, "DryRun": True},
    ),
    *(
        Rehearsal(
            case.item,
            (case.service, "eu-west-1"),
            (case.list_offerings, {case.offerings_key: [case.offering]}, case.filters),
            (offering_id, Decimal("2000.00"), Decimal("146.00")),
        )
        for case, offering_id in zip(CASES, ("rds-off", "ec-off", "mdb-off"), strict=True)
    ),
    Rehearsal(
        paged.SEARCH,
        ("opensearch", "eu-west-1"),
        (
            "describe_reserved_instance_offerings",
            {"ReservedInstanceOfferings": [paged.SEARCH_OFFERING]},
            {"MaxResults": 100},
        ),
        (paged.OFFERING_ID, Decimal("0.00"), Decimal("146.00")),
    ),
    Rehearsal(
        paged.REDSHIFT,
        ("redshift", "eu-west-1"),
        (
            "describe_reserved_node_offerings",
            {"ReservedNodeOfferings": [REDSHIFT_PRICED]},
            {"MaxRecords": 100},
        ),
        ("rs-off", Decimal("0.00"), Decimal("730.00")),
    ),
    Rehearsal(
        paged.PLAN,
        ("savingsplans", "us-east-1"),
        (
            "describe_savings_plans_offerings",
            {"searchResults": [paged.PLAN_OFFERING]},
            paged.PLAN_SEARCH,
        ),
        ("sp-off", Decimal("19710.00"), Decimal("547.50")),
    ),
]


@pytest.mark.parametrize("case", REHEARSALS, ids=[case.item["service"] for case in REHEARSALS])
def test_a_dry_run_quotes_the_offering_and_buys_nothing(case: Rehearsal) -> None:
    provider, clients = provider_with()
    stub = clients.stub(*case.client)
    stub.add_response(*case.read)
    if case.dry_run is not None:
        stub.add_client_error(
            "purchase_reserved_instances_offering",
            "DryRunOperation",
            "Request would have succeeded, but DryRun flag is set.",
            412,
            expected_params=case.dry_run,
        )

    quote = provider.rehearse(case.item, ACCOUNT)

    assert (quote.offering_id, quote.upfront, quote.recurring_monthly) == case.quoted
    assert clients.asked == [case.client]
    clients.done()
