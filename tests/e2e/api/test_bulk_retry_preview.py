"""`POST /api/purchases/retry?preview=true`: what a bulk retry would do, with the money,
written nowhere.

The preview checks the rows as the real request does (`check_rows`: the retry's checks
and the requester's spend limits), so its verdict is the real one: the tests send the
same body for real afterwards and compare. A partially completed row counts only what
its lineage has not bought. The number of statements does not grow with the rows.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.db import db, unit_of_work
from app.domain.spending import Totals, totals_of
from app.domain.statuses import Status
from app.models import (
    AuditEvent,
    ProviderPurchase,
    PurchaseExecution,
    PurchaseSuppression,
    RetryBatch,
    RetryBatchItem,
    SpendLimit,
)
from app.services.identity import create_group
from tests.e2e.helpers import sign_in
from tests.factories import PASSWORD, make_execution, make_user, recommendation
from tests.support.commands import wait_until
from tests.support.statements import recorded_statements

PREVIEW = "/api/purchases/retry?preview=true"
TABLES = (
    PurchaseExecution,
    RetryBatch,
    RetryBatchItem,
    AuditEvent,
    ProviderPurchase,
    PurchaseSuppression,
)


def post(client, token: str, body: Any, url: str = PREVIEW):
    return client.post(url, json=body, headers={"X-CSRFToken": token})


def counts(session) -> dict[str, int]:
    return {
        model.__tablename__: session.scalar(select(func.count()).select_from(model))
        for model in TABLES
    }


def item(upfront: str, savings: str, **fields: Any) -> dict[str, Any]:
    return recommendation(upfront_cost=upfront, monthly_savings=savings, **fields)


def failed_row(session, creator, items=None, **fields) -> PurchaseExecution:
    """A failed row whose cost columns add up its items (as a created row's do)."""
    items = items or [item("1000.00", "40.00")]
    values = {
        "error": "capacity",
        "recommendations": items,
        "total_upfront_cost": totals_of(items).upfront,
        "estimated_savings": totals_of(items).yearly_savings,
    }
    return make_execution(session, Status.FAILED, created_by=creator, **(values | fields))


def partial_row(session, creator, *, bought_id: str = "sim-bought") -> PurchaseExecution:
    """Partially completed: item 0 (2,000 upfront) bought, item 1 (300 upfront) failed."""
    row = make_execution(
        session,
        Status.PARTIALLY_COMPLETED,
        created_by=creator,
        error="1 of 2 purchases failed: capacity",
        recommendations=[
            item("2000.00", "100.00") | {"purchased": True, "purchase_id": bought_id},
            item("300.00", "15.00", resource_type="c5.xlarge") | {"error": "capacity"},
        ],
    )
    session.add(
        ProviderPurchase(
            idempotency_key=f"{row.execution_id}:0",
            execution_id=row.execution_id,
            item_index=0,
            provider="aws",
            purchase_id=bought_id,
        )
    )
    session.flush()
    return row


def money(*item_lists: list[dict[str, Any]]) -> dict[str, Any]:
    total = Totals()
    for items in item_lists:
        total += totals_of(items)
    return total.as_dict()


def test_the_preview_groups_every_row_with_its_money_and_writes_nothing(
    client, db_session, alice, bob, redis_db
):
    plain = failed_row(db_session, alice)
    partial = partial_row(db_session, alice)
    not_mine = failed_row(db_session, bob)
    persistent = failed_row(db_session, alice, error="AccessDenied: IAM denied for ec2")
    persistent_too = failed_row(db_session, alice, error="iam DENIED again")
    completed = make_execution(db_session, Status.COMPLETED, created_by=alice)
    unknown = uuid.uuid4()
    ids = [
        str(plain.execution_id),
        str(partial.execution_id),
        str(not_mine.execution_id),
        str(persistent.execution_id),
        "not-an-id",
        str(persistent_too.execution_id),
        str(unknown),
        str(completed.execution_id),
    ]
    token = sign_in(client, alice)
    before = counts(db_session)

    response = post(client, token, {"execution_ids": ids})

    assert response.status_code == 200, response.json
    assert counts(db_session) == before
    assert redis_db.llen("purchases") == 0  # nothing queued for a worker
    body = response.json
    assert body["total"] == len(ids)
    queued_money = money(plain.recommendations, [partial.recommendations[1]])
    assert body["totals"] == queued_money
    assert body["totals"]["upfront"] == "1300.00"  # the partial row's bought 2,000 not counted
    grouped = [
        (group["outcome"], group["status"], group["count"], group["execution_ids"])
        for group in body["groups"]
    ]
    assert grouped == [
        ("queued", None, 2, [str(plain.execution_id), str(partial.execution_id)]),
        ("refused", 403, 1, [str(not_mine.execution_id)]),
        ("refused", 409, 2, [str(persistent.execution_id), str(persistent_too.execution_id)]),
        ("refused", 400, 1, ["not-an-id"]),
        ("refused", 404, 1, [str(unknown)]),
        ("refused", 409, 1, [str(completed.execution_id)]),
    ]
    queued, others, hinted, malformed, missing, wrong_state = body["groups"]
    assert queued["totals"] == queued_money and queued["reason"] is None
    assert hinted["reason"].endswith(
        "Grant the purchasing role the missing IAM permission, then retry"
    )
    assert hinted["totals"] == money(persistent.recommendations, persistent_too.recommendations)
    assert others["reason"].startswith("not allowed to retry")
    # A refusal never tells what another's row holds: no money, no creator, no error.
    assert others["totals"] == Totals().as_dict()
    assert str(bob.id) not in response.get_data(as_text=True)
    assert "capacity" not in others["reason"]
    assert (malformed["reason"], missing["reason"]) == (
        "not an execution id (a UUID)",
        "no such execution",
    )
    assert malformed["totals"]["items"] == 0 and missing["totals"]["items"] == 0
    assert wrong_state["reason"].endswith("this one is completed")


def test_the_preview_refuses_what_the_spend_limits_refuse_as_the_real_retry_does(
    client, db_session, redis_db
):
    capped = create_group(db_session, "Capped", [])
    db_session.add(SpendLimit(group_id=capped.id, max_per_purchase=Decimal("1500.00")))
    carol = make_user(db_session, groups=("Capped",))
    within = failed_row(db_session, carol)  # 1,000 over its term
    over = failed_row(db_session, carol, items=[item("2400.00", "90.00")])
    partial = partial_row(db_session, carol)  # 2,300 in all, 300 left to buy: within
    ids = [str(row.execution_id) for row in (within, over, partial)]
    token = sign_in(client, carol)

    preview = post(client, token, {"execution_ids": ids})

    assert preview.status_code == 200, preview.json
    queued, refused = preview.json["groups"]
    assert queued["execution_ids"] == [ids[0], ids[2]]
    assert (refused["status"], refused["execution_ids"]) == (403, [ids[1]])
    assert refused["reason"] == 'over the spend limit of group "Capped": max_per_purchase'
    assert refused["totals"]["term_total"] == "2400.00"

    # The real request, the same body: the same rows refused, with the same status.
    real = post(client, token, {"execution_ids": ids}, url="/api/purchases/retry")
    assert real.status_code == 202, real.json
    items = client.get(real.json["status_url"]).json["items"]
    assert {i["execution_id"]: i["status_code"] for i in items if i["state"] == "rejected"} == {
        ids[1]: 403
    }
    assert [i["execution_id"] for i in items if i["state"] == "queued"] == queued["execution_ids"]


def test_a_filter_previews_the_rows_it_matches_and_partially_completed_ones_by_name(
    client, db_session, alice
):
    failed = [failed_row(db_session, alice) for _ in range(3)]
    partial = partial_row(db_session, alice)
    token = sign_in(client, alice)

    by_default = post(client, token, {"filter": {"error_contains": "capacity"}}).json
    assert by_default["total"] == 3  # no status: failed rows
    assert sorted(by_default["groups"][0]["execution_ids"]) == sorted(
        str(r.execution_id) for r in failed
    )
    partials = post(client, token, {"filter": {"status": "partially_completed"}}).json
    assert partials["groups"] == [
        {
            "outcome": "queued",
            "status": None,
            "reason": None,
            "count": 1,
            "totals": money([partial.recommendations[1]]),
            "execution_ids": [str(partial.execution_id)],
        }
    ]


@pytest.mark.parametrize(
    ("url", "body"),
    [
        (PREVIEW, {"execution_ids": []}),
        (PREVIEW, {"execution_ids": ["\ud800"]}),
        (PREVIEW, {"execution_ids": [str(uuid.uuid4())] * 2, "force": "yes"}),
        (PREVIEW, {"filter": {"status": "completed"}}),
        (PREVIEW, {"filter": {"created_after": "9" * 80}}),
        (PREVIEW, {"filter": {"execution_id": "x" * 10_000}}),
        (PREVIEW, {"execution_ids": [str(uuid.uuid4())] * 10_001}),
        ("/api/purchases/retry?preview=maybe", {"execution_ids": [str(uuid.uuid4())]}),
        (PREVIEW, [1, 2]),
    ],
)
def test_hostile_input_is_a_400_with_a_message_and_writes_nothing(
    client, db_session, alice, url, body
):
    token = sign_in(client, alice)
    before = counts(db_session)
    response = post(client, token, body, url=url)
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.json["error"]
    assert counts(db_session) == before


def test_a_user_who_may_retry_nothing_is_403_and_no_session_is_401(client, db_session, alice):
    reader = make_user(db_session, groups=("Read-only",))
    row = failed_row(db_session, alice)
    assert post(client, "x", {"execution_ids": [str(row.execution_id)]}).status_code in {401, 400}
    token = sign_in(client, reader)
    before = counts(db_session)
    response = post(client, token, {"execution_ids": [str(row.execution_id)]})
    assert response.status_code == 403 and "not allowed to retry" in response.json["error"]
    assert counts(db_session) == before


def test_10_and_500_rows_cost_the_same_number_of_statements(client, db_session, alice):
    rows = [failed_row(db_session, alice) for _ in range(500)]
    rows[0] = partial_row(db_session, alice)
    token = sign_in(client, alice)
    sizes: dict[int, int] = {}
    for size in (10, 500):
        ids = [str(row.execution_id) for row in rows[:size]]
        assert db.engine is not None
        with recorded_statements(db.engine) as seen:
            response = post(client, token, {"execution_ids": ids})
        assert response.status_code == 200, response.json
        assert response.json["groups"][0]["count"] == size
        sizes[size] = len(seen)
    assert sizes[10] == sizes[500], sizes


# --- Against a real worker: the preview's totals are what the real retry queues --------


class Web:
    """The API as one signed-in user calls it, each call in an app context of its own."""

    def __init__(self, app: Flask, email: str) -> None:
        self.app, self.client = app, app.test_client()
        with app.app_context():
            response = self.client.post(
                "/api/auth/login", json={"email": email, "password": PASSWORD}
            )
            self.token = response.json["csrf_token"]

    def post(self, url: str, body: Any) -> Any:
        with self.app.app_context():
            return self.client.post(url, json=body, headers={"X-CSRFToken": self.token})

    def get(self, url: str) -> Any:
        with self.app.app_context():
            return self.client.get(url)


@pytest.mark.worker
def test_the_preview_s_money_is_what_the_real_bulk_retry_then_creates(
    app, committed_db, celery_worker, mailbox
):
    with unit_of_work() as session:
        dave = make_user(session)
        others = make_user(session)
        rows = [
            failed_row(session, dave),
            failed_row(session, dave, items=[item("10.00", "1.00"), item("20.00", "2.00")]),
            partial_row(session, dave),
            failed_row(session, others),
            failed_row(session, dave, error="SES sandbox: recipient not verified"),
        ]
        ids = [str(row.execution_id) for row in rows]
        email = dave.email
    web = Web(app, email)

    preview = web.post(PREVIEW, {"execution_ids": ids})
    assert preview.status_code == 200, preview.json
    real = web.post("/api/purchases/retry", {"execution_ids": ids})
    assert real.status_code == 202, real.json

    def done() -> dict[str, Any] | None:
        state = web.get(real.json["status_url"]).json
        return state if state["state"] == "done" else None

    batch = wait_until(done, timeout=30, what="the batch to settle")
    succeeded = {
        i["execution_id"]: i["successor_execution_id"]
        for i in batch["items"]
        if i["successor_execution_id"]
    }
    queued, *refused = preview.json["groups"]
    assert sorted(succeeded) == sorted(queued["execution_ids"])
    assert {
        i["execution_id"]: i["status_code"] for i in batch["items"] if i["state"] == "rejected"
    } == {
        execution_id: group["status"]
        for group in refused
        for execution_id in group["execution_ids"]
    }
    with unit_of_work() as session:
        successors = session.scalars(
            select(PurchaseExecution).where(
                PurchaseExecution.execution_id.in_([uuid.UUID(s) for s in succeeded.values()])
            )
        ).all()
        created = money(*(successor.recommendations for successor in successors))
        upfront = sum(successor.total_upfront_cost for successor in successors)
        savings = sum(successor.estimated_savings for successor in successors)
    assert created == preview.json["totals"] == queued["totals"]
    assert f"{upfront:.2f}" == created["upfront"]
    assert f"{savings:.2f}" == created["yearly_savings"]
