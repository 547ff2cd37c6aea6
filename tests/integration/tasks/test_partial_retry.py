"""Finishing what was partly bought: a partially completed execution is retried over the
JSON API, settled by a real worker, approved and run; its successor buys only what the
lineage has not bought.

The lineage is written with the factories as two earlier attempts left it: the first
attempt bought item 0 and was reaped (failed), its retry bought item 1 and failed to buy
item 2 (partially completed). The ledger holds `<first attempt>:0` and `:1`. The retry of
the partially completed row carries items 0 and 1 as bought (not selected, with the
ledger's purchase ids) and buys item 2 alone, under `<first attempt>:2`.
"""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app.db import unit_of_work
from app.domain.statuses import Status
from app.models import ProviderPurchase, PurchaseExecution, PurchaseSuppression, User
from tests.e2e.helpers import sign_in
from tests.factories import make_account, make_execution, make_user, recommendation
from tests.support.commands import wait_until

pytestmark = pytest.mark.worker

ITEMS = [
    recommendation(resource_type="m5.large", upfront_cost="1000.00", monthly_savings="40.00"),
    recommendation(resource_type="c5.xlarge", upfront_cost="500.00", monthly_savings="20.00"),
    recommendation(resource_type="r5.large", upfront_cost="300.00", monthly_savings="15.00"),
]


def bought(item: dict[str, Any], purchase_id: str) -> dict[str, Any]:
    return item | {"purchased": True, "purchase_id": purchase_id, "error": None}


def failed(item: dict[str, Any], error: str) -> dict[str, Any]:
    return item | {"purchased": False, "purchase_id": None, "error": error}


def ledger_row(key_root: uuid.UUID, index: int, buyer: uuid.UUID, purchase_id: str | None):
    return ProviderPurchase(
        idempotency_key=f"{key_root}:{index}",
        execution_id=buyer,
        item_index=index,
        provider="aws",
        purchase_id=purchase_id,
    )


def partly_bought_lineage(creator: User) -> tuple[uuid.UUID, uuid.UUID]:
    """The first attempt (failed, bought item 0) and its retry (partially completed,
    bought item 1, item 2 failed), with their ledger rows. Returns both ids."""
    with unit_of_work() as session:
        account = make_account(session, contact_email="finops@example.com")
        first = make_execution(
            session,
            Status.FAILED,
            created_by=session.merge(creator),
            cloud_account_id=account.id,
            error="reaped: no progress for more than 10 minutes",
            recommendations=[bought(ITEMS[0], "sim-first-0"), ITEMS[1], ITEMS[2]],
        )
        second = make_execution(
            session,
            Status.PARTIALLY_COMPLETED,
            created_by=session.merge(creator),
            cloud_account_id=account.id,
            retry_attempt_n=1,
            error="1 of 3 purchases failed: InsufficientInstanceCapacity",
            recommendations=[
                bought(ITEMS[0], "sim-first-0"),
                bought(ITEMS[1], "sim-second-1"),
                failed(ITEMS[2], "InsufficientInstanceCapacity"),
            ],
            total_upfront_cost=Decimal("1800.00"),
            estimated_savings=Decimal("900.00"),
        )
        session.flush()
        first.retry_execution_id = second.execution_id
        session.add_all(
            [
                ledger_row(first.execution_id, 0, first.execution_id, "sim-first-0"),
                ledger_row(first.execution_id, 1, second.execution_id, "sim-second-1"),
            ]
        )
        return first.execution_id, second.execution_id


class Web:
    """The API as one signed-in user calls it, each call in an app context of its own."""

    def __init__(self, app: Flask, user: User) -> None:
        self.app, self.client = app, app.test_client()
        with app.app_context():
            self.token = sign_in(self.client, user)

    def post(self, url: str, json: Any = None) -> Any:
        with self.app.app_context():
            return self.client.post(url, json=json, headers={"X-CSRFToken": self.token})

    def get(self, url: str) -> Any:
        with self.app.app_context():
            return self.client.get(url)


def read(execution_id: uuid.UUID) -> PurchaseExecution:
    with unit_of_work() as session:
        row = session.get(PurchaseExecution, execution_id, populate_existing=True)
        assert row is not None
        session.expunge(row)
        return row


def ledger() -> dict[str, tuple[uuid.UUID, str | None]]:
    with unit_of_work() as session:
        rows = session.execute(
            select(
                ProviderPurchase.idempotency_key,
                ProviderPurchase.execution_id,
                ProviderPurchase.purchase_id,
            )
        )
        return {key: (buyer, purchase_id) for key, buyer, purchase_id in rows}


def test_a_partially_completed_row_s_retry_buys_only_the_missing_items(
    app, committed_db, celery_worker, mailbox
):
    with unit_of_work() as session:
        alice = make_user(session)
    first, partial = partly_bought_lineage(alice)
    web = Web(app, alice)

    accepted = web.post(f"/api/purchases/retry/{partial}")
    assert accepted.status_code == 202, accepted.json

    def settled() -> dict[str, Any] | None:
        body = web.get(accepted.json["status_url"]).json
        return body if body["state"] != "queued" else None

    outcome = wait_until(settled, timeout=30, what="the retry to settle")
    assert outcome["state"] == "succeeded", outcome
    successor_id = uuid.UUID(outcome["execution_id"])

    # The successor, before it runs: every item at its index, items 0 and 1 carried as
    # bought with the ledger's purchase ids, its money and suppressions item 2's alone.
    successor = read(successor_id)
    assert successor.status == Status.PENDING and successor.retry_attempt_n == 2
    items = successor.recommendations
    assert [item["resource_type"] for item in items] == ["m5.large", "c5.xlarge", "r5.large"]
    assert [(item.get("selected", True), item["purchase_id"]) for item in items] == [
        (False, "sim-first-0"),
        (False, "sim-second-1"),
        (True, None),
    ]
    assert [item["purchased"] for item in items] == [True, True, False]
    assert (successor.total_upfront_cost, successor.estimated_savings) == (
        Decimal("300.00"),
        Decimal("180.00"),
    )
    with unit_of_work() as session:
        scopes = session.scalars(
            select(PurchaseSuppression.resource_type).where(
                PurchaseSuppression.execution_id == successor_id
            )
        ).all()
    assert scopes == ["r5.large"]
    assert read(partial).retry_execution_id == successor_id
    assert read(partial).status == Status.PARTIALLY_COMPLETED  # history, as it was

    wait_until(lambda: read(successor_id).notification_sent_at, what="the approval email")
    approved = web.post(f"/api/purchases/approve/{successor_id}")
    assert approved.status_code == 200, approved.json
    done = wait_until(
        lambda: (row := read(successor_id)).status not in {"approved", "running"} and row,
        timeout=30,
        what="the successor to run",
    )

    assert done.status == Status.COMPLETED, done.error
    after = ledger()
    assert set(after) == {f"{first}:0", f"{first}:1", f"{first}:2"}
    # The items bought before keep their purchases (and their buyers); item 2 is new.
    assert after[f"{first}:0"] == (first, "sim-first-0")
    assert after[f"{first}:1"] == (partial, "sim-second-1")
    buyer, new_purchase = after[f"{first}:2"]
    assert buyer == successor_id and new_purchase
    assert [item["purchase_id"] for item in done.recommendations] == [
        "sim-first-0",
        "sim-second-1",
        new_purchase,
    ]

    # The details page tells the whole story.
    page = web.get(f"/admin/purchases/details/?id={successor_id}").get_data(as_text=True)
    stories = re.findall(
        r'data-item-bought-by="(\w+)"\s+data-bought-execution-id="([0-9a-f-]+)"', page
    )
    assert stories == [
        ("earlier", str(first)),
        ("earlier", str(partial)),
        ("this", str(successor_id)),
    ]
    assert 'data-bought-earlier="2" data-bought-here="1"' in page
    for purchase_id in ("sim-first-0", "sim-second-1", new_purchase):
        assert f"<code data-ledger-purchase-id>{purchase_id}</code>" in page
    # The partially completed row's own page: item 2 was bought by a later attempt.
    earlier_page = web.get(f"/admin/purchases/details/?id={partial}").get_data(as_text=True)
    assert re.findall(r'data-item-bought-by="(\w+)"', earlier_page) == ["earlier", "this", "later"]
