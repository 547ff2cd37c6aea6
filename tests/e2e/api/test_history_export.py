"""`GET /api/history/export.csv` and the filters `GET /api/history` gained with it (error
text, date range, one id): what they match, who may read, formula cells neutralised,
and what a page costs in statements whatever its size."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from app.db import db
from app.domain.statuses import Status
from app.services import history_export
from app.services.identity import create_group
from tests.e2e.helpers import sign_in
from tests.factories import make_account, make_execution, make_plan, make_user
from tests.support.statements import recorded_statements

EXPORT = "/api/history/export.csv"
T0 = datetime(2026, 3, 10, 12, tzinfo=UTC)
FORMULAS = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1:A2)", "\t=1", "\r=1", "\uff1d1"]


@pytest.fixture
def signed_in(client, alice):
    sign_in(client, alice)
    return client


def rows_of(response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True), newline="")))


def history_ids(client, query: str) -> list[str]:
    response = client.get(f"/api/history?{query}")
    assert response.status_code == 200, response.json
    return [item["execution_id"] for item in response.json["items"]]


def test_the_export_is_every_matching_row_newest_first_with_names(
    db_session, signed_in, alice, monkeypatch
):
    monkeypatch.setattr(history_export, "BATCH_ROWS", 2)  # several keyset batches
    account, plan = make_account(db_session), make_plan(db_session)
    made = [
        make_execution(
            db_session,
            Status.FAILED,
            created_by=alice,
            created_at=T0 - timedelta(hours=index),
            cloud_account_id=account.id,
            plan_id=plan.id,
            error=f"capacity {index}",
        )
        for index in range(5)
    ]
    make_execution(db_session, Status.COMPLETED, created_by=alice)
    rows = rows_of(signed_in.get(f"{EXPORT}?status=failed"))
    assert [row["execution_id"] for row in rows] == [str(row.execution_id) for row in made]
    first = rows[0]
    assert first["account"] == "aws account" and first["plan"] == "ramp"
    assert first["created_by_email"] == alice.email
    assert first["error"] == "capacity 0" and first["status"] == "failed"
    assert first["total_upfront_cost"] == "0.00"
    assert len(rows_of(signed_in.get(EXPORT))) == 6


def test_formula_cells_get_a_leading_apostrophe(db_session, signed_in, alice):
    for index, formula in enumerate(FORMULAS):
        make_execution(
            db_session,
            Status.FAILED,
            created_by=alice,
            created_at=T0 - timedelta(minutes=index),
            error=formula,
        )
    make_execution(db_session, Status.FAILED, created_by=alice, error="plain = fine")
    errors = [row["error"] for row in rows_of(signed_in.get(EXPORT))]
    assert errors[0] == "plain = fine"
    assert errors[1:] == ["'" + formula for formula in FORMULAS]


def test_the_export_narrows_like_the_history(db_session, signed_in, alice):
    bob = make_user(db_session, "bob@example.com")
    old = make_execution(db_session, Status.FAILED, created_by=bob, created_at=T0, error="Quota")
    new = make_execution(
        db_session, Status.FAILED, created_by=alice, created_at=T0 + timedelta(days=1)
    )
    query = f"created_by_user_id={bob.id}&error_contains=QUOTA&created_before=2026-03-11"
    assert [row["execution_id"] for row in rows_of(signed_in.get(f"{EXPORT}?{query}"))] == [
        str(old.execution_id)
    ]
    assert rows_of(signed_in.get(f"{EXPORT}?created_after=2026-03-11")) == rows_of(
        signed_in.get(f"{EXPORT}?execution_id={new.execution_id}")
    )


@pytest.mark.parametrize(
    "query", ["status=bogus", "created_after=soon", "error_contains=%00", "plan_id=x"]
)
def test_a_bad_filter_is_a_json_400_before_any_csv(db_session, signed_in, query):
    response = signed_in.get(f"{EXPORT}?{query}")
    assert response.status_code == 400
    assert set(response.json) == {"error"}


def test_the_export_needs_view_purchases(app, db_session, alice):
    make_execution(db_session, Status.FAILED, created_by=alice, error="secret-ish")
    create_group(db_session, "Retry robots", ["retry-own:purchases"], restricts_defaults=True)
    robot = make_user(db_session, "robot@example.com", groups=("Retry robots",))
    client = app.test_client()
    sign_in(client, robot)
    response = client.get(EXPORT)
    assert response.status_code == 403
    assert "view:purchases" in response.json["error"]
    assert "secret-ish" not in response.get_data(as_text=True)


def test_the_export_needs_a_session(client, db_session, alice):
    make_execution(db_session, Status.FAILED, created_by=alice, error="secret-ish")
    response = client.get(EXPORT)
    assert response.status_code == 401
    assert response.json == {"error": "authentication required"}


def test_history_filters_on_error_text_dates_and_id(db_session, signed_in, alice):
    quota = make_execution(
        db_session, Status.FAILED, created_by=alice, created_at=T0, error="Quota 50%_x"
    )
    later = make_execution(
        db_session, Status.FAILED, created_by=alice, created_at=T0 + timedelta(days=1)
    )
    assert history_ids(signed_in, "error_contains=quota") == [str(quota.execution_id)]
    assert history_ids(signed_in, "error_contains=50%25_") == [str(quota.execution_id)]
    assert history_ids(signed_in, "error_contains=5%25x") == []  # % is literal
    assert history_ids(signed_in, "created_after=2026-03-11") == [str(later.execution_id)]
    assert history_ids(signed_in, "created_before=2026-03-10T12:00:00Z") == []
    assert history_ids(signed_in, "created_before=2026-03-10T12:00:01Z") == [
        str(quota.execution_id)
    ]
    assert history_ids(signed_in, f"execution_id={later.execution_id}") == [str(later.execution_id)]
    bad = signed_in.get("/api/history?created_after=2026-13-01")
    assert bad.status_code == 400 and "created_after" in bad.json["error"]


def test_a_history_page_of_20_costs_the_statements_of_a_page_of_200(db_session, signed_in, alice):
    accounts = [make_account(db_session), make_account(db_session, provider="azure")]
    for index in range(110):
        creator = make_user(db_session)
        successor = make_execution(
            db_session, Status.PENDING, created_by=creator, cloud_account_id=accounts[0].id
        )
        make_execution(
            db_session,
            Status.FAILED,
            created_by=alice,
            cloud_account_id=accounts[1].id,
            retry_execution_id=successor.execution_id,
            error=f"failure {index}",
        )

    def statements(query: str) -> tuple[int, int]:
        assert db.engine is not None
        with recorded_statements(db.engine) as seen:
            response = signed_in.get(f"/api/history?{query}")
        assert response.status_code == 200
        return len(seen), len(response.json["items"])

    assert statements("limit=20") == (statements("limit=200")[0], 20)
    assert statements("limit=200")[1] == 200
    assert statements("limit=20&status=failed")[0] == statements("limit=200&status=failed")[0]
