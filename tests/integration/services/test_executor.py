"""The executor on each database: per-item outcomes, the row's status, and the ledger
that keeps a lineage from buying one item twice (docs/operations.md, "The executor and
the ledger").

The cloud provider is the one thing that cannot run here: `RecordingProvider` stands in
for it behind the product's own provider interface, and counts what it was asked to buy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select, update

from app.db import unit_of_work, utcnow
from app.domain.approvals import ApprovalPolicy
from app.domain.statuses import Status
from app.models import AuditEvent, Notification, ProviderPurchase, PurchaseExecution
from app.providers import ProviderRegistry, PurchaseFailed
from app.providers.simulator import SimulatedProvider
from app.services import executor
from tests.factories import make_account, make_execution, make_user, recommendation


@pytest.fixture(autouse=True)
def app_context(app, db_session):
    with app.app_context():
        yield


@dataclass(frozen=True)
class RecordingProvider(SimulatedProvider):
    """The simulator, counting the purchases it is asked for; `during` runs inside the
    purchase (as another process would, with its own transaction)."""

    name: str = "aws"
    calls: list[str] = field(default_factory=list)
    during: Any = None

    def purchase(self, key: str, item: Mapping[str, Any], account=None, quote=None) -> str:
        self.calls.append(key)
        if self.during is not None:
            self.during()
        return super().purchase(key, item)


def registry(*providers: SimulatedProvider) -> ProviderRegistry:
    return ProviderRegistry.of(providers)


def approved_row(session, items, **fields):
    account = make_account(session)
    values = {"recommendations": items, "cloud_account_id": account.id} | fields
    return make_execution(session, Status.APPROVED, created_by=make_user(session), **values)


NO_FOUR_EYES = ApprovalPolicy()


def execute(execution_id, providers: ProviderRegistry, policy=NO_FOUR_EYES):
    with unit_of_work() as session:
        started = executor.start(
            session, execution_id, owner="test-run", policy=policy, now=utcnow()
        )
    if not isinstance(started, executor.Run):
        return started
    return executor.run(started, providers)


def reload(session, execution_id) -> PurchaseExecution:
    return session.get(PurchaseExecution, execution_id, populate_existing=True)


def ledger(session) -> dict[str, str | None]:
    rows = session.execute(select(ProviderPurchase.idempotency_key, ProviderPurchase.purchase_id))
    return {key: purchase_id for key, purchase_id in rows}


def test_all_items_bought_completes_the_row_and_owes_its_outcome_email(db_session):
    provider = RecordingProvider()
    row = approved_row(db_session, [recommendation(), recommendation(resource_type="c5.large")])

    assert execute(row.execution_id, registry(provider)) is Status.COMPLETED

    done = reload(db_session, row.execution_id)
    assert done.status == Status.COMPLETED and done.error is None and done.completed_at
    keys = [f"{row.execution_id}:0", f"{row.execution_id}:1"]
    assert provider.calls == keys
    assert ledger(db_session) == {
        key: item["purchase_id"] for key, item in zip(keys, done.recommendations, strict=True)
    }
    assert all(item["purchased"] and item["error"] is None for item in done.recommendations)
    kinds = db_session.scalars(
        select(Notification.kind).where(Notification.execution_id == row.execution_id)
    )
    assert list(kinds) == ["outcome"]
    events = db_session.scalars(
        select(AuditEvent.action).where(AuditEvent.execution_id == row.execution_id)
    )
    assert list(events) == ["execution.running", "execution.completed"]


def test_some_items_failing_is_a_partial_completion_naming_the_first_error(db_session):
    items = [
        recommendation(),
        recommendation(simulate_error="InsufficientCapacity: m5.large"),
        recommendation(selected=False),
    ]
    row = approved_row(db_session, items)

    assert execute(row.execution_id, registry(RecordingProvider())) is Status.PARTIALLY_COMPLETED

    done = reload(db_session, row.execution_id)
    assert done.error == "1 of 2 purchases failed: InsufficientCapacity: m5.large"
    bought, refused, skipped = done.recommendations
    assert bought["purchased"] and bought["purchase_id"].startswith("sim-aws-")
    assert refused == items[1] | {"error": "InsufficientCapacity: m5.large"}
    assert skipped == items[2]  # not selected: untouched, never claimed
    # The refused purchase bought nothing: its claim is released for a retry.
    assert ledger(db_session) == {f"{row.execution_id}:0": bought["purchase_id"]}


def test_every_item_failing_fails_the_row(db_session):
    row = approved_row(db_session, [recommendation(simulate_error="IAM denied: ec2:Purchase")])

    assert execute(row.execution_id, registry(RecordingProvider())) is Status.FAILED

    done = reload(db_session, row.execution_id)
    assert done.error == "1 of 1 purchases failed: IAM denied: ec2:Purchase"
    assert ledger(db_session) == {}


def test_an_item_no_provider_buys_fails_without_a_purchase(db_session):
    row = approved_row(db_session, [recommendation(provider="oracle"), recommendation()])

    assert execute(row.execution_id, registry(RecordingProvider())) is Status.PARTIALLY_COMPLETED

    assert reload(db_session, row.execution_id).recommendations[0]["error"] == (
        "no purchasing provider for 'oracle'"
    )


def test_a_lineage_never_buys_what_an_ancestor_bought(db_session):
    """The root bought item 0 and died; its successor marks item 0 purchased with the
    root's purchase id and buys only item 1."""
    items = [recommendation(), recommendation(resource_type="c5.large")]
    root = make_execution(db_session, Status.FAILED, recommendations=items, error="reaped")
    db_session.add(
        ProviderPurchase(
            idempotency_key=f"{root.execution_id}:0",
            execution_id=root.execution_id,
            item_index=0,
            provider="aws",
            purchase_id="ri-bought-by-the-root",
        )
    )
    successor = approved_row(db_session, items, retry_attempt_n=1)
    root.retry_execution_id = successor.execution_id
    db_session.flush()
    provider = RecordingProvider()

    assert execute(successor.execution_id, registry(provider)) is Status.COMPLETED

    assert provider.calls == [f"{root.execution_id}:1"]
    first, second = reload(db_session, successor.execution_id).recommendations
    assert first["purchased"] and first["purchase_id"] == "ri-bought-by-the-root"
    assert ledger(db_session) == {
        f"{root.execution_id}:0": "ri-bought-by-the-root",
        f"{root.execution_id}:1": second["purchase_id"],
    }


@pytest.mark.parametrize("findable", [True, False])
def test_a_claim_whose_outcome_was_lost_is_rebought_only_where_it_can_be_looked_up(
    db_session, findable
):
    row = approved_row(db_session, [recommendation()])
    db_session.add(
        ProviderPurchase(
            idempotency_key=f"{row.execution_id}:0",
            execution_id=row.execution_id,
            item_index=0,
            provider="aws",
        )
    )
    db_session.flush()
    provider = RecordingProvider(findable=findable)

    status = execute(row.execution_id, registry(provider))

    (item,) = reload(db_session, row.execution_id).recommendations
    if findable:
        assert status is Status.COMPLETED and provider.calls == [f"{row.execution_id}:0"]
        assert ledger(db_session) == {f"{row.execution_id}:0": item["purchase_id"]}
    else:
        assert status is Status.FAILED and provider.calls == []
        assert "check the aws console" in item["error"]
        assert ledger(db_session) == {f"{row.execution_id}:0": None}


@pytest.mark.parametrize("status", [Status.PENDING, Status.RUNNING, Status.COMPLETED])
def test_only_an_approved_row_is_started(db_session, status):
    """A redelivered task finds its row running or done, and does nothing."""
    row = make_execution(db_session, status, recommendations=[recommendation()])
    provider = RecordingProvider()

    assert execute(row.execution_id, registry(provider)) is None

    assert reload(db_session, row.execution_id).status == status
    assert provider.calls == [] and ledger(db_session) == {}


def test_an_approver_who_lost_the_permission_fails_the_row_unbought(db_session):
    approver = make_user(db_session, "approver@example.com", groups=("Purchasers",))
    row = approved_row(
        db_session,
        [recommendation()],
        approved_by=approver.email,
        approved_by_user_id=approver.id,
    )
    approver.groups = []  # revoked: approve-own covers only their own rows
    db_session.flush()
    provider = RecordingProvider()

    assert execute(row.execution_id, registry(provider)) is Status.FAILED

    done = reload(db_session, row.execution_id)
    assert done.error.startswith("approval withdrawn: not allowed to approve")
    assert provider.calls == []


def test_the_four_eyes_rule_is_checked_again_at_execution(db_session):
    creator = make_user(db_session, "creator@example.com", groups=("Administrators",))
    row = make_execution(
        db_session,
        Status.APPROVED,
        created_by=creator,
        recommendations=[recommendation()],
        approved_by=creator.email,
        approved_by_user_id=creator.id,
    )

    status = execute(row.execution_id, registry(RecordingProvider()), ApprovalPolicy(True))

    assert status is Status.FAILED
    assert "different approver" in reload(db_session, row.execution_id).error


def test_a_row_reaped_mid_run_keeps_the_reapers_outcome_and_the_ledger_keeps_the_purchase(
    db_session,
):
    row = approved_row(db_session, [recommendation(), recommendation(resource_type="c5.large")])

    def reaped_meanwhile() -> None:
        with unit_of_work() as session:
            session.execute(
                update(PurchaseExecution)
                .where(PurchaseExecution.execution_id == row.execution_id)
                .values(status=Status.FAILED.value, error="reaped: no progress")
            )

    provider = RecordingProvider(during=reaped_meanwhile)

    assert execute(row.execution_id, registry(provider)) is None

    done = reload(db_session, row.execution_id)
    assert done.status == Status.FAILED and done.error == "reaped: no progress"
    assert not any(item["purchased"] for item in done.recommendations)
    # Money was spent: the ledger says so, and a retry will not buy it again.
    assert list(ledger(db_session)) == [f"{row.execution_id}:0"]
    assert provider.calls == [f"{row.execution_id}:0"]


def test_a_provider_refusal_is_the_items_error(db_session):
    @dataclass(frozen=True)
    class Refusing(SimulatedProvider):
        name: str = "aws"

        def purchase(self, key: str, item: Mapping[str, Any], account=None, quote=None) -> str:
            raise PurchaseFailed("ReservedInstancesOffering not found")

    row = approved_row(db_session, [recommendation()])

    assert execute(row.execution_id, ProviderRegistry.of([Refusing()])) is Status.FAILED
    (item,) = reload(db_session, row.execution_id).recommendations
    assert item["error"] == "ReservedInstancesOffering not found"
    assert ledger(db_session) == {}
