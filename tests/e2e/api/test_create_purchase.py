"""Creating a purchase over the JSON API (`POST /api/purchases`), and previewing it
(`?preview=true`), on both databases.

A created row is pending, owes its approval email, holds its suppressions and is
audited; a preview writes nothing and its totals are the created row's. A malformed
item is refused naming the item and the field, a suppressed item with its reason, and
hostile bodies with a 400; every refusal writes nothing but its audit event. A preview
of 10 items and of 1,000 costs the same number of statements.
"""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from app.db import db
from app.domain.statuses import Status
from app.models import (
    AuditEvent,
    Group,
    Notification,
    ProviderPurchase,
    PurchaseExecution,
    PurchaseSuppression,
    SpendLimit,
)
from app.services.identity import create_group
from tests.e2e.helpers import sign_in
from tests.factories import make_account, make_execution, make_suppression, make_user
from tests.support.statements import recorded_statements

URL = "/api/purchases"


def item(**overrides: Any) -> dict[str, Any]:
    return {
        "provider": "aws",
        "service": "ec2",
        "region": "us-east-1",
        "resource_type": "m5.large",
        "account_id": "123456789012",
        "count": 2,
        "term_years": 3,
        "payment_option": "partial-upfront",
        "upfront_cost": "1000.00",
        "monthly_cost": "10.00",
        "monthly_savings": "50.00",
        **overrides,
    }


@pytest.fixture
def creator(db_session):
    create_group(db_session, "Buyers", ["create-any:purchases"])
    return make_user(db_session, "buyer@example.com", groups=("Buyers",))


@pytest.fixture
def account(db_session):
    return make_account(db_session, contact_email="finops@example.com")


def counts(session) -> dict[str, int]:
    session.expire_all()
    return {
        model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
        for model in (
            PurchaseExecution,
            AuditEvent,
            ProviderPurchase,
            PurchaseSuppression,
            Notification,
        )
    }


def post(client, token: str, body: Any, *, preview: bool = False):
    url = f"{URL}?preview=true" if preview else URL
    return client.post(url, json=body, headers={"X-CSRFToken": token})


def test_create_makes_a_pending_row_that_owes_its_approval_email(
    client, db_session, creator, account
):
    token = sign_in(client, creator)
    body = {"cloud_account_id": str(account.id), "recommendations": [item(), item(count=1)]}
    response = post(client, token, body)
    assert response.status_code == 201, response.json
    assert response.json["status"] == "pending"
    execution_id = response.json["execution_id"]
    assert response.headers["Location"].endswith(execution_id)
    row = db_session.get(PurchaseExecution, uuid.UUID(execution_id))
    assert row.status == "pending" and row.created_by_user_id == creator.id
    assert row.cloud_account_id == account.id
    assert row.total_upfront_cost == Decimal("2000.00")
    assert row.estimated_savings == Decimal("1200.00")  # 2 x 50 a month, a year
    assert [entry["purchased"] for entry in row.recommendations] == [False, False]
    kinds = db_session.scalars(
        select(Notification.kind).where(Notification.execution_id == row.execution_id)
    ).all()
    assert kinds == ["approval"]
    scopes = db_session.scalars(
        select(PurchaseSuppression.suppressed_count).where(
            PurchaseSuppression.execution_id == row.execution_id
        )
    ).all()
    assert scopes == [3]
    created = db_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "execution.created")
    ).one()
    assert created.execution_id == row.execution_id and created.details["via"] == "api"
    assert created.details["commitment"] == "2720.00"  # 2,000 upfront + 10 x 36 x 2


def test_preview_writes_nothing_and_its_totals_are_the_created_rows(
    client, db_session, creator, account
):
    token = sign_in(client, creator)
    body = {
        "cloud_account_id": str(account.id),
        "recommendations": [item(), item(selected=False, upfront_cost="99.00")],
    }
    before = counts(db_session)
    preview = post(client, token, body, preview=True)
    assert preview.status_code == 200, preview.json
    assert counts(db_session) == before
    totals = preview.json["totals"]
    assert totals == {
        "items": 1,
        "upfront": "1000.00",
        "monthly": "10.00",
        "term_total": "1360.00",
        "monthly_savings": "50.00",
        "yearly_savings": "600.00",
        "term_savings": "1800.00",
    }
    first, second = preview.json["items"]
    assert first["quote"]["term_total"] == "1360.00" and first["quote_error"] is None
    assert first["quote"]["recurring_monthly"] == "10.00"
    assert first["commitment"] == "1360.00"
    assert second["selected"] is False and second["quote"] is None
    created = post(client, token, body)
    assert created.status_code == 201
    row = db_session.get(PurchaseExecution, uuid.UUID(created.json["execution_id"]))
    assert f"{row.total_upfront_cost:.2f}" == totals["upfront"]
    assert f"{row.estimated_savings:.2f}" == totals["yearly_savings"]


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({"count": 0}, "field 'count'"),
        ({"term_years": 2}, "field 'term_years'"),
        ({"upfront_cost": "-5"}, "field 'upfront_cost'"),
        ({"service": ""}, "field 'service'"),
        ({"provider": "azure"}, "field 'provider'"),
        ({"selected": "yes"}, "field 'selected'"),
        ({"notes": {"a": {"b": {"c": {"d": {"e": 1}}}}}}, "nested"),
    ],
)
def test_a_malformed_item_is_refused_naming_the_item_and_field(
    client, db_session, creator, account, bad, named
):
    token = sign_in(client, creator)
    body = {"cloud_account_id": str(account.id), "recommendations": [item(), item(**bad)]}
    before = counts(db_session)
    for preview in (True, False):
        response = post(client, token, body, preview=preview)
        assert response.status_code == 400, response.json
        assert response.json["error"].startswith("item 1:") and named in response.json["error"]
        assert response.json["item"] == 1
    after = counts(db_session)
    assert after.pop("audit_events") == before.pop("audit_events") + 1  # the create's refusal
    assert after == before


def test_a_suppressed_item_is_refused_with_its_reason(client, db_session, creator, account):
    other = make_execution(db_session, Status.APPROVED)
    make_suppression(db_session, other)
    token = sign_in(client, creator)
    before = counts(db_session)
    body = {
        "cloud_account_id": str(account.id),
        "recommendations": [item(region="eu-west-1"), item()],
    }
    response = post(client, token, body)
    assert response.status_code == 409, response.json
    assert response.json["item"] == 1
    assert response.json["suppressed_by"] == str(other.execution_id)
    assert "is suppressed" in response.json["error"] and "m5.large" in response.json["error"]
    refused = counts(db_session)
    assert refused.pop("audit_events") == before.pop("audit_events") + 1
    assert refused == before
    # Deselected, it is no longer bought, and the purchase is taken.
    body["recommendations"][1]["selected"] = False
    assert post(client, token, body).status_code == 201


def test_who_may_create(client, db_session, account):
    nobody = make_user(db_session, "viewer@example.com")
    token = sign_in(client, nobody)
    body = {"cloud_account_id": str(account.id), "recommendations": [item()]}
    response = post(client, token, body)
    assert response.status_code == 403
    assert "create-any:purchases or create-own:purchases is required" in response.json["error"]
    assert str(account.id) not in response.json["error"]


def test_create_own_covers_only_the_accounts_the_limits_name(client, db_session, account):
    other = make_account(db_session, provider="aws")
    create_group(db_session, "Own", ["create-own:purchases"])
    user = make_user(db_session, "own@example.com", groups=("Own",))
    group = db_session.scalars(select(Group).where(Group.name == "Own")).one()
    db_session.add(SpendLimit(group_id=group.id, allowed_account_ids=[str(account.id)]))
    db_session.flush()
    token = sign_in(client, user)
    ok = post(client, token, {"cloud_account_id": str(account.id), "recommendations": [item()]})
    assert ok.status_code == 201, ok.json
    refused = post(client, token, {"cloud_account_id": str(other.id), "recommendations": [item()]})
    assert refused.status_code == 403
    assert "create-own:purchases covers only" in refused.json["error"]
    assert str(other.id) not in refused.json["error"] and other.name not in refused.json["error"]


@pytest.mark.parametrize(
    "body",
    [
        [],
        {
            "cloud_account_id": "6f1c0000-0000-4000-8000-000000000000",
            "recommendations": [{"region": "a\x00"}],
        },
        {"recommendations": [item()]},
        {"cloud_account_id": "not-a-uuid", "recommendations": [item()]},
        {"cloud_account_id": "6f1c0000-0000-4000-8000-000000000000", "recommendations": []},
        {"cloud_account_id": "6f1c0000-0000-4000-8000-000000000000", "recommendations": "x"},
        {"cloud_account_id": "6f1c0000-0000-4000-8000-000000000000", "recommendations": [1]},
        {"cloud_account_id": "\ud800", "recommendations": [item()]},
        {
            "cloud_account_id": "6f1c0000-0000-4000-8000-000000000000",
            "recommendations": [item()],
            "x": 1,
        },
        {
            "cloud_account_id": "6f1c0000-0000-4000-8000-000000000000",
            "recommendations": [item()],
            "step_number": 0,
        },
        {
            "cloud_account_id": "6f1c0000-0000-4000-8000-000000000000",
            "recommendations": [item()],
            "scheduled_for": "tomorrow",
        },
        {
            "cloud_account_id": "6f1c0000-0000-4000-8000-000000000000",
            "recommendations": [item()] * 1001,
        },
    ],
)
def test_hostile_bodies_are_400_and_write_nothing(client, db_session, creator, body):
    token = sign_in(client, creator)
    before = counts(db_session)
    response = post(client, token, body)
    assert response.status_code == 400, response.json
    assert response.json["error"]
    after = counts(db_session)
    after.pop("audit_events")
    before.pop("audit_events")
    assert after == before


def test_unknown_account_and_plan_are_404(client, db_session, creator, account):
    token = sign_in(client, creator)
    missing = "6f1c0000-0000-4000-8000-000000000000"
    response = post(client, token, {"cloud_account_id": missing, "recommendations": [item()]})
    assert response.status_code == 404
    response = post(
        client,
        token,
        {"cloud_account_id": str(account.id), "recommendations": [item()], "plan_id": missing},
    )
    assert response.status_code == 404 and "no plan" in response.json["error"]


def test_scheduled_for_is_kept_and_a_past_time_refused(client, db_session, creator, account):
    token = sign_in(client, creator)
    body = {
        "cloud_account_id": str(account.id),
        "recommendations": [item()],
        "scheduled_for": "2020-01-01T00:00:00Z",
    }
    assert post(client, token, body).status_code == 400
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86_400))
    body["scheduled_for"] = later
    response = post(client, token, body)
    assert response.status_code == 201, response.json
    row = db_session.get(PurchaseExecution, uuid.UUID(response.json["execution_id"]))
    assert (
        row.scheduled_for is not None and row.scheduled_for.strftime("%Y-%m-%dT%H:%M:%SZ") == later
    )


def test_a_preview_of_1000_items_costs_what_one_of_10_does(client, db_session, creator, account):
    token = sign_in(client, creator)
    sizes: dict[int, int] = {}
    for size in (10, 1000):
        body = {
            "cloud_account_id": str(account.id),
            "recommendations": [item(resource_type=f"m5.{n}") for n in range(size)],
        }
        assert db.engine is not None
        with recorded_statements(db.engine) as seen:
            response = post(client, token, body, preview=True)
        assert response.status_code == 200, response.json
        assert response.json["totals"]["items"] == size
        sizes[size] = len(seen)
    assert sizes[10] == sizes[1000], sizes
