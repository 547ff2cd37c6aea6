"""The executor in each purchase mode, on each database: a dry run quotes and claims
nothing, a live run quotes then buys under the ledger's key, and a claim whose outcome
was lost is resolved by asking the provider (`find`) before anything is bought.

The cloud stands behind the product's own provider interface: `ScriptedCloud` answers
as a cloud would and records every call. The clouds' SDKs are tested at their own seams
in tests/unit/providers, and the whole product against a local AWS endpoint in
tests/integration/tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from app.db import unit_of_work, utcnow
from app.domain.approvals import ApprovalPolicy
from app.domain.statuses import Status
from app.models import Notification, ProviderPurchase, PurchaseExecution
from app.providers import (
    AccountTarget,
    ConnectionReport,
    LookupFailed,
    OutcomeUnknown,
    ProviderRegistry,
    PurchaseFailed,
    Quote,
)
from app.providers.simulator import SimulatedProvider
from app.services import executor
from tests import factories
from tests.factories import make_account, make_execution, make_user


@pytest.fixture(autouse=True)
def app_context(app, db_session):
    with app.app_context():
        yield


@dataclass
class ScriptedCloud:
    """A cloud that sells one offering at `price` over the term, remembers what it sold
    under which key, and can be told to fail a lookup or refuse a purchase."""

    name: str = "aws"
    price: Decimal = Decimal("1200.00")
    sold: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    lookup_fails: bool = False
    refuse: str | None = None
    outcome_unknown: bool = False

    def can_find(self, service: str) -> bool:
        return service == "ec2"

    def quote(self, item: Mapping[str, Any], account: AccountTarget) -> Quote:
        self.calls.append(("quote", account.name))
        return Quote(
            offering_id="offering-1",
            currency="USD",
            upfront=self.price,
            recurring_monthly=Decimal("0"),
            term_total=self.price,
        )

    def rehearse(self, item: Mapping[str, Any], account: AccountTarget) -> Quote:
        self.calls.append(("rehearse", account.name))
        return self.quote(item, account)

    def purchase(
        self, key: str, item: Mapping[str, Any], account: AccountTarget, quote: Quote
    ) -> str:
        self.calls.append(("purchase", key))
        if self.refuse:
            raise PurchaseFailed(self.refuse)
        if self.outcome_unknown:
            raise OutcomeUnknown("the operation was still running at the deadline")
        return self.sold.setdefault(key, f"ri-{len(self.sold) + 1}")

    def find(
        self,
        key: str,
        item: Mapping[str, Any],
        account: AccountTarget,
        *,
        since: datetime | None = None,
    ) -> str | None:
        self.calls.append(("find", key))
        if self.lookup_fails:
            raise LookupFailed("IAM denied: ec2:DescribeReservedInstances is not allowed")
        return self.sold.get(key)

    def check(self, account: AccountTarget) -> ConnectionReport:
        return ConnectionReport(ok=True, message="ok")


def ec2_item(**fields: Any) -> dict[str, Any]:
    return factories.ec2_item(count=2, upfront_cost=1200, monthly_savings=40, **fields)


def approved(session, mode: str, items: list[dict[str, Any]]) -> PurchaseExecution:
    account = make_account(session, mode=mode)
    return make_execution(
        session,
        Status.APPROVED,
        created_by=make_user(session),
        recommendations=items,
        cloud_account_id=account.id,
    )


def execute(execution_id, cloud: ScriptedCloud) -> Status | None:
    registry = ProviderRegistry.of([SimulatedProvider("aws")], [cloud])
    with unit_of_work() as session:
        started = executor.start(
            session, execution_id, owner="test-run", policy=ApprovalPolicy(), now=utcnow()
        )
    if not isinstance(started, executor.Run):
        return started
    return executor.run(started, registry)


def reload(session, execution_id) -> PurchaseExecution:
    return session.get(PurchaseExecution, execution_id, populate_existing=True)


def ledger(session) -> dict[str, tuple[str | None, str]]:
    rows = session.scalars(select(ProviderPurchase).execution_options(populate_existing=True))
    return {row.idempotency_key: (row.purchase_id, row.mode) for row in rows}


def lost_claim(session, row: PurchaseExecution, index: int = 0) -> str:
    """A claim an earlier worker made and died before recording."""
    key = f"{row.execution_id}:{index}"
    session.add(
        ProviderPurchase(
            idempotency_key=key,
            execution_id=row.execution_id,
            item_index=index,
            provider="aws",
            mode="live",
        )
    )
    session.flush()
    return key


def test_a_dry_run_quotes_every_item_buys_nothing_and_claims_nothing(db_session):
    row = approved(db_session, "dry_run", [ec2_item(), ec2_item(resource_type="c5.large")])
    cloud = ScriptedCloud()

    assert execute(row.execution_id, cloud) is Status.COMPLETED

    done = reload(db_session, row.execution_id)
    assert done.purchase_mode == "dry_run"
    assert [kind for kind, _ in cloud.calls] == ["rehearse", "quote", "rehearse", "quote"]
    for item in done.recommendations:
        assert item["purchased"] is False and item["purchase_id"] is None
        assert item["quote"]["offering_id"] == "offering-1"
        assert item["quote"]["term_total"] == "1200.00"
    assert ledger(db_session) == {}
    assert db_session.scalar(select(Notification.kind)) == "outcome"


def test_a_live_run_quotes_then_buys_under_the_key_and_records_the_mode(db_session):
    row = approved(db_session, "live", [ec2_item()])
    cloud = ScriptedCloud()

    assert execute(row.execution_id, cloud) is Status.COMPLETED

    key = f"{row.execution_id}:0"
    assert cloud.calls == [("quote", "aws account"), ("purchase", key)]
    (item,) = reload(db_session, row.execution_id).recommendations
    assert item["purchased"] is True and item["purchase_id"] == "ri-1"
    assert item["quote"]["term_total"] == "1200.00"
    assert ledger(db_session) == {key: ("ri-1", "live")}
    assert reload(db_session, row.execution_id).purchase_mode == "live"


def test_a_lost_outcome_the_provider_finds_is_recorded_and_not_bought_again(db_session):
    row = approved(db_session, "live", [ec2_item()])
    key = lost_claim(db_session, row)
    cloud = ScriptedCloud(sold={key: "ri-bought-before-the-crash"})

    assert execute(row.execution_id, cloud) is Status.COMPLETED

    assert cloud.calls == [("find", key)]
    (item,) = reload(db_session, row.execution_id).recommendations
    assert item["purchase_id"] == "ri-bought-before-the-crash"
    assert ledger(db_session) == {key: ("ri-bought-before-the-crash", "live")}


def test_a_lost_outcome_the_provider_does_not_find_is_bought(db_session):
    row = approved(db_session, "live", [ec2_item()])
    key = lost_claim(db_session, row)
    cloud = ScriptedCloud()

    assert execute(row.execution_id, cloud) is Status.COMPLETED

    assert cloud.calls == [("find", key), ("quote", "aws account"), ("purchase", key)]
    assert ledger(db_session) == {key: ("ri-1", "live")}


def test_a_failed_lookup_fails_the_item_and_buys_nothing(db_session):
    row = approved(db_session, "live", [ec2_item()])
    key = lost_claim(db_session, row)
    cloud = ScriptedCloud(lookup_fails=True)

    assert execute(row.execution_id, cloud) is Status.FAILED

    assert cloud.calls == [("find", key)]
    (item,) = reload(db_session, row.execution_id).recommendations
    assert "looking it up at aws failed" in item["error"]
    assert "IAM denied" in item["error"]  # the ops hint's substring survives
    # The claim stays unresolved: a later retry asks again.
    assert ledger(db_session) == {key: (None, "live")}


def test_a_lost_outcome_of_a_service_the_provider_cannot_look_up_is_not_bought(db_session):
    row = approved(db_session, "live", [ec2_item(service="rds", engine="mysql")])
    key = lost_claim(db_session, row)
    cloud = ScriptedCloud()

    assert execute(row.execution_id, cloud) is Status.FAILED

    assert cloud.calls == []
    (item,) = reload(db_session, row.execution_id).recommendations
    assert "cannot look it up for 'rds'" in item["error"]
    assert ledger(db_session) == {key: (None, "live")}


@pytest.mark.parametrize("mode", ["live", "dry_run"])
def test_a_price_above_the_items_limit_fails_it_and_buys_nothing(db_session, mode):
    row = approved(db_session, mode, [ec2_item(max_price="1000"), ec2_item(max_price=5000)])
    cloud = ScriptedCloud()

    assert execute(row.execution_id, cloud) is Status.PARTIALLY_COMPLETED

    dear, cheap = reload(db_session, row.execution_id).recommendations
    assert dear["error"] == (
        "price above the item's limit: 1200.00 USD over the term, max_price 1000"
    )
    assert not dear["purchased"]
    bought = [call for call in cloud.calls if call[0] == "purchase"]
    if mode == "live":
        assert bought == [("purchase", f"{row.execution_id}:1")]
        assert ledger(db_session) == {f"{row.execution_id}:1": ("ri-1", "live")}
    else:
        assert bought == [] and ledger(db_session) == {}
        assert cheap["quote"]["offering_id"] == "offering-1"


def test_a_provider_refusal_releases_the_claim(db_session):
    row = approved(db_session, "live", [ec2_item()])
    cloud = ScriptedCloud(refuse="insufficient capacity: m5.large in us-east-1")

    assert execute(row.execution_id, cloud) is Status.FAILED

    (item,) = reload(db_session, row.execution_id).recommendations
    assert item["error"] == "insufficient capacity: m5.large in us-east-1"
    assert ledger(db_session) == {}


def test_a_purchase_whose_outcome_is_unknown_keeps_its_claim_for_a_retry_to_look_up(db_session):
    row = approved(db_session, "live", [ec2_item(), ec2_item(resource_type="c5.large")])
    cloud = ScriptedCloud(outcome_unknown=True)

    assert execute(row.execution_id, cloud) is Status.FAILED

    first, second = reload(db_session, row.execution_id).recommendations
    assert first["error"] == "the operation was still running at the deadline"
    assert second["error"] == first["error"]  # the next item was still tried
    assert ledger(db_session) == {
        f"{row.execution_id}:0": (None, "live"),
        f"{row.execution_id}:1": (None, "live"),
    }


@pytest.mark.parametrize("mode", ["live", "dry_run"])
def test_an_item_a_cloud_cannot_buy_fails_the_row_at_start_naming_the_field(db_session, mode):
    row = approved(db_session, mode, [ec2_item(), ec2_item(term_years=2)])
    cloud = ScriptedCloud()

    assert execute(row.execution_id, cloud) is Status.FAILED

    done = reload(db_session, row.execution_id)
    assert done.error == (
        "malformed recommendations: item 1: field 'term_years': expected one of 1, 3, got 2"
    )
    assert cloud.calls == [] and ledger(db_session) == {}


def test_a_simulated_account_never_reaches_the_cloud(db_session):
    row = approved(db_session, "simulate", [{"provider": "aws", "count": 1}])
    cloud = ScriptedCloud()

    assert execute(row.execution_id, cloud) is Status.COMPLETED

    assert cloud.calls == []
    ((purchase_id, mode),) = ledger(db_session).values()
    assert purchase_id.startswith("sim-aws-") and mode == "simulate"


def test_every_provider_call_is_logged_with_the_execution_and_the_key(db_session, caplog):
    row = approved(db_session, "live", [ec2_item()])
    key = lost_claim(db_session, row)
    caplog.set_level("INFO", logger="app.services.executor")

    execute(row.execution_id, ScriptedCloud())

    calls = [record for record in caplog.records if record.msg.startswith("provider call")]
    assert [(record.operation, record.getMessage()) for record in calls] == [
        ("find", "provider call find"),
        ("find", "provider call find answered"),
        ("quote", "provider call quote"),
        ("quote", "provider call quote answered"),
        ("purchase", "provider call purchase"),
        ("purchase", "provider call purchase answered"),
    ]
    for record in calls:
        assert record.execution_id == str(row.execution_id) and record.key == key
        assert (record.provider, record.mode) == ("aws", "live")
