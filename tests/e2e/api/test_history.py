"""`GET /api/history` and `GET /api/purchases/<id>` over HTTP: order, cursor pagination,
filters, the item shape, who may read, and clean 4xx answers for any odd input."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from app.domain.retry import OPS_HINTS
from app.domain.statuses import Status
from app.services.identity import create_group
from tests.e2e.helpers import sign_in
from tests.factories import make_account, make_execution, make_plan, make_user

T0 = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
ITEM_FIELDS = {
    "execution_id",
    "status",
    "error",
    "ops_hint",
    "retry_execution_id",
    "retry_of",
    "retry_attempt_n",
    "created_by_user_id",
    "created_by_email",
    "cloud_account_id",
    "plan_id",
    "step_number",
    "total_upfront_cost",
    "estimated_savings",
}


def history(client, query: str = "") -> dict[str, Any]:
    response = client.get(f"/api/history{query}")
    assert response.status_code == 200, response.json
    assert set(response.json) == {"items", "next"}
    return response.json


def ids(page: dict[str, Any]) -> list[str]:
    return [item["execution_id"] for item in page["items"]]


def newest_first(rows) -> list[str]:
    """The order the API promises: created_at, then execution_id, both descending."""
    ordered = sorted(rows, key=lambda row: (row.created_at, row.execution_id), reverse=True)
    return [str(row.execution_id) for row in ordered]


def walk(client, query: str) -> tuple[list[str], int]:
    """Follow `next` from the first page to the last: every id seen, and the page count."""
    seen, pages, cursor = [], 0, None
    while True:
        suffix = f"&before={cursor}" if cursor else ""
        page = history(client, f"{query}{suffix}")
        seen += ids(page)
        pages += 1
        cursor = page["next"]
        if cursor is None:
            return seen, pages
        assert pages < 100, "pagination does not end"


def cursor_for(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.fixture
def signed_in(client, alice):
    sign_in(client, alice)
    return client


# --- Order and pagination ------------------------------------------------------------


def test_history_is_newest_first(db_session, signed_in, alice):
    rows = [
        make_execution(db_session, created_by=alice, created_at=T0 + timedelta(minutes=m))
        for m in (5, 1, 9, 3)
    ]
    page = history(signed_in)
    assert ids(page) == newest_first(rows)
    assert ids(page)[0] == str(rows[2].execution_id)
    assert page["next"] is None


@pytest.mark.parametrize("limit", [1, 2, 3, 6, 10])
def test_the_cursor_visits_every_row_once_even_when_created_at_ties(
    db_session, signed_in, alice, limit
):
    # Three rows share one instant and two another: a cursor on created_at alone
    # would skip or repeat some of them at a page boundary.
    times = [T0, T0, T0, T0 - timedelta(seconds=1), T0 - timedelta(seconds=1), T0 + timedelta(1)]
    rows = [make_execution(db_session, created_by=alice, created_at=at) for at in times]
    seen, pages = walk(signed_in, f"?limit={limit}")
    assert seen == newest_first(rows)
    assert len(set(seen)) == len(rows)
    assert pages == max(1, -(-len(rows) // limit))


def test_the_cursor_keeps_the_filters_of_the_walk(db_session, signed_in, alice):
    failed = [
        make_execution(db_session, Status.FAILED, created_by=alice, created_at=T0) for _ in range(4)
    ]
    for _ in range(3):
        make_execution(db_session, Status.COMPLETED, created_by=alice, created_at=T0)
    seen, pages = walk(signed_in, "?status=failed&limit=1")
    assert seen == newest_first(failed)
    assert pages == 4


def test_a_page_holds_fifty_rows_by_default_and_up_to_two_hundred(db_session, signed_in, alice):
    for n in range(201):
        make_execution(db_session, created_by=alice, created_at=T0 + timedelta(seconds=n))
    default = history(signed_in)
    assert len(default["items"]) == 50
    assert default["next"] is not None
    largest = history(signed_in, "?limit=200")
    assert len(largest["items"]) == 200
    assert largest["next"] is not None
    last = history(signed_in, f"?limit=200&before={largest['next']}")
    assert len(last["items"]) == 1
    assert last["next"] is None


def test_an_empty_history(signed_in):
    assert history(signed_in) == {"items": [], "next": None}


# --- Filters ---------------------------------------------------------------------------


def test_filters_narrow_the_history(db_session, signed_in, alice):
    bob = make_user(db_session, "bob@example.com")
    aws = make_account(db_session, provider="aws")
    azure = make_account(db_session, provider="azure")
    ramp = make_plan(db_session)
    target = make_execution(
        db_session,
        Status.FAILED,
        created_by=bob,
        cloud_account_id=azure.id,
        plan_id=ramp.id,
        created_at=T0,
    )
    others = [
        make_execution(db_session, Status.COMPLETED, created_by=bob, cloud_account_id=azure.id),
        make_execution(db_session, Status.FAILED, created_by=alice, cloud_account_id=azure.id),
        make_execution(db_session, Status.FAILED, created_by=bob, cloud_account_id=aws.id),
        make_execution(db_session, Status.FAILED, created_by=bob, plan_id=ramp.id),
        make_execution(db_session, Status.FAILED),
    ]
    everyone = [target, *others]

    def only(**wanted) -> list[str]:
        return newest_first(
            row
            for row in everyone
            if all(str(getattr(row, name)) == str(value) for name, value in wanted.items())
        )

    assert ids(history(signed_in, "?status=failed")) == only(status="failed")
    assert ids(history(signed_in, f"?cloud_account_id={azure.id}")) == only(
        cloud_account_id=azure.id
    )
    assert ids(history(signed_in, f"?plan_id={ramp.id}")) == only(plan_id=ramp.id)
    assert ids(history(signed_in, f"?created_by_user_id={bob.id}")) == only(
        created_by_user_id=bob.id
    )
    combined = f"?status=failed&cloud_account_id={azure.id}&plan_id={ramp.id}"
    combined += f"&created_by_user_id={bob.id}"
    assert ids(history(signed_in, combined)) == [str(target.execution_id)]
    assert ids(history(signed_in, f"?created_by_user_id={uuid.uuid4()}")) == []
    assert ids(history(signed_in, "?status=expired")) == []


def test_a_repeated_filter_takes_its_first_value(db_session, signed_in, alice):
    failed = make_execution(db_session, Status.FAILED, created_by=alice)
    make_execution(db_session, Status.PENDING, created_by=alice)
    page = history(signed_in, "?status=failed&status=pending&status=bogus")
    assert ids(page) == [str(failed.execution_id)]


# --- The item --------------------------------------------------------------------------


def lineage(session, creator):
    """A failed row with an ops hint, retried into a pending successor with costs."""
    ramp, aws = make_plan(session), make_account(session)
    successor = make_execution(
        session,
        Status.PENDING,
        created_by=creator,
        plan_id=ramp.id,
        cloud_account_id=aws.id,
        step_number=2,
        retry_attempt_n=3,
        total_upfront_cost=Decimal("1234.5"),
        estimated_savings=Decimal("7"),
        recommendations=[{"provider": "aws", "count": 2, "error": None}],
        created_at=T0,
    )
    failed = make_execution(
        session,
        Status.FAILED,
        created_by=None,
        retry_execution_id=successor.execution_id,
        retry_attempt_n=2,
        error="AccessDenied: IAM DENIED for ec2:PurchaseReservedInstancesOffering",
        recommendations=[{"provider": "aws", "count": 2, "error": "AccessDenied"}],
        created_at=T0 - timedelta(hours=1),
    )
    return failed, successor


def test_each_item_carries_status_lineage_creator_plan_and_costs(db_session, signed_in, alice):
    failed, successor = lineage(db_session, alice)
    first, second = history(signed_in)["items"]
    assert ITEM_FIELDS <= set(first)
    assert "recommendations" not in first  # history pages stay small
    assert first == first | {
        "execution_id": str(successor.execution_id),
        "status": "pending",
        "error": None,
        "ops_hint": None,
        "retry_execution_id": None,
        "retry_of": str(failed.execution_id),
        "retry_attempt_n": 3,
        "created_by_user_id": str(alice.id),
        "created_by_email": "alice@example.com",
        "cloud_account_id": str(successor.cloud_account_id),
        "plan_id": str(successor.plan_id),
        "step_number": 2,
        "total_upfront_cost": "1234.50",
        "estimated_savings": "7.00",
    }
    assert second == second | {
        "execution_id": str(failed.execution_id),
        "status": "failed",
        "error": failed.error,
        "ops_hint": OPS_HINTS[3][1],
        "retry_execution_id": str(successor.execution_id),
        "retry_of": None,
        "retry_attempt_n": 2,
        "created_by_user_id": None,
        "created_by_email": None,
        "plan_id": None,
        "step_number": 1,
        "total_upfront_cost": "0.00",
        "estimated_savings": "0.00",
    }


# --- Who may read ----------------------------------------------------------------------


def test_a_read_only_user_may_view_history_and_one_execution(app, db_session, alice):
    failed, _ = lineage(db_session, alice)
    viewer = make_user(db_session, "viewer@example.com", groups=("Read-only",))
    client = app.test_client()
    sign_in(client, viewer)
    assert len(history(client)["items"]) == 2
    assert client.get(f"/api/purchases/{failed.execution_id}").status_code == 200


@pytest.mark.parametrize("path", ["/api/history", "/api/purchases/{id}"])
def test_a_user_without_view_is_403(app, db_session, alice, path):
    failed, successor = lineage(db_session, alice)
    create_group(db_session, "Retry robots", ["retry-own:purchases"], restricts_defaults=True)
    robot = make_user(db_session, "robot@example.com", groups=("Retry robots",))
    client = app.test_client()
    sign_in(client, robot)
    response = client.get(path.format(id=failed.execution_id))
    assert response.status_code == 403
    assert set(response.json) == {"error"}
    assert "view:purchases" in response.json["error"]
    assert str(successor.execution_id) not in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/api/history", f"/api/purchases/{uuid.uuid4()}"])
def test_reading_needs_a_session(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.json == {"error": "authentication required"}


# --- Odd input: a clean 4xx, never a 500 ----------------------------------------------

BAD_QUERIES = {
    "limit-zero": "limit=0",
    "limit-negative": "limit=-1",
    "limit-word": "limit=abc",
    "limit-huge": "limit=99999999999",
    "limit-over-max": "limit=201",
    "limit-fraction": "limit=1.5",
    "limit-superscript": "limit=%C2%B2",
    "limit-arabic-digit": "limit=%D9%A1",
    "limit-nul": "limit=%00",
    "before-garbage": "before=garbage",
    "before-nul": "before=%00",
    "before-huge": "before=" + "A" * 10_000,
    "before-not-a-cursor": "before=" + cursor_for("yesterday|someone"),
    "before-naive": "before=" + cursor_for(f"2024-01-01T00:00:00|{uuid.uuid4()}"),
    "before-overflows-up": "before=" + cursor_for(f"9999-12-31T23:59:59-01:00|{uuid.uuid4()}"),
    "before-overflows-down": "before=" + cursor_for(f"0001-01-01T00:00:00+01:00|{uuid.uuid4()}"),
    "status-bogus": "status=bogus",
    "status-unicode": "status=f%C3%A4iled",
    "status-nul": "status=failed%00",
    "status-upper": "status=FAILED",
    "account-not-a-uuid": "cloud_account_id=aws",
    "plan-unicode": "plan_id=%E2%98%83",
    "creator-nul": "created_by_user_id=%00",
    "creator-huge": "created_by_user_id=" + "f" * 10_000,
}


@pytest.mark.parametrize("query", BAD_QUERIES.values(), ids=BAD_QUERIES)
def test_odd_history_queries_answer_400_in_json(db_session, signed_in, alice, query):
    make_execution(db_session, Status.FAILED, created_by=alice)
    response = signed_in.get(f"/api/history?{query}")
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert set(response.json) == {"error"}
    assert len(response.json["error"]) < 300  # huge input is never echoed back


def test_a_cursor_far_in_the_past_or_future_is_just_a_position(db_session, signed_in, alice):
    row = make_execution(db_session, created_by=alice, created_at=T0)
    future = cursor_for(f"9999-12-31T23:59:59+00:00|{uuid.UUID(int=0)}")
    past = cursor_for(f"0001-01-01T00:00:00+00:00|{uuid.UUID(int=0)}")
    assert ids(history(signed_in, f"?before={future}")) == [str(row.execution_id)]
    assert ids(history(signed_in, f"?before={past}")) == []


def test_blank_parameters_mean_no_filter(db_session, signed_in, alice):
    row = make_execution(db_session, created_by=alice)
    query = "?status=&limit=&before=&plan_id=&cloud_account_id=&created_by_user_id=&x=y"
    assert ids(history(signed_in, query)) == [str(row.execution_id)]


# --- GET /api/purchases/<id> ------------------------------------------------------------


def test_one_execution_with_its_recommendations_and_lineage(db_session, signed_in, alice):
    failed, successor = lineage(db_session, alice)
    response = signed_in.get(f"/api/purchases/{successor.execution_id}")
    assert response.status_code == 200
    body = response.json
    assert ITEM_FIELDS <= set(body)
    assert body["execution_id"] == str(successor.execution_id)
    assert body["retry_of"] == str(failed.execution_id)
    assert body["created_by_email"] == "alice@example.com"
    assert body["recommendations"] == [{"provider": "aws", "count": 2, "error": None}]
    assert body["total_upfront_cost"] == "1234.50"

    predecessor = signed_in.get(f"/api/purchases/{failed.execution_id}").json
    assert predecessor["retry_execution_id"] == str(successor.execution_id)
    assert predecessor["retry_of"] is None
    assert predecessor["ops_hint"] == OPS_HINTS[3][1]
    assert predecessor["recommendations"][0]["error"] == "AccessDenied"


@pytest.mark.parametrize(
    ("raw_id", "status"),
    [
        ("not-a-uuid", 400),
        ("x" * 10_000, 400),
        ("%00", 400),
        ("%E2%98%83", 400),
        ("a/b", 400),
        (str(uuid.UUID(int=0)), 404),
        (str(uuid.uuid4()), 404),
    ],
    ids=["word", "10k-chars", "nul", "unicode", "slash", "nil-uuid", "unknown"],
)
def test_one_execution_malformed_or_unknown(signed_in, raw_id, status):
    response = signed_in.get(f"/api/purchases/{raw_id}")
    assert response.status_code == status
    assert set(response.json) == {"error"}
    assert len(response.json["error"]) < 200
