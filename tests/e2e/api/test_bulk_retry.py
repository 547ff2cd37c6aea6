"""`POST /api/purchases/retry` (bulk) and `GET /api/purchases/retry-batches/<id>` over HTTP.

No worker runs here: the chunks wait in the test Redis; the worker's half is proven in
tests/integration/tasks/test_bulk_retry.py.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app import task_names
from app.db import utcnow
from app.domain.bulk_retry import CHUNK_SIZE
from app.domain.retry import RETRYABLE
from app.domain.statuses import Status
from app.models import AuditEvent, RetryBatch, RetryBatchItem
from tests.e2e.helpers import sign_in
from tests.factories import make_account, make_execution, make_user, recommendation


def post_bulk(client, token: str | None, body: Any):
    headers = {"X-CSRFToken": token} if token is not None else {}
    return client.post("/api/purchases/retry", json=body, headers=headers)


def failed_row(session, creator, **fields):
    values = {"error": "capacity", "recommendations": [recommendation()]}
    return make_execution(session, Status.FAILED, created_by=creator, **(values | fields))


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def queued_chunks(redis_db) -> list[list[Any]]:
    messages = [json.loads(raw) for raw in redis_db.lrange("purchases", 0, -1)]
    return sorted(
        json.loads(base64.b64decode(m["body"]))[0]
        for m in messages
        if m["headers"]["task"] == task_names.RETRY
    )


def test_ids_answer_202_with_the_batch_and_queue_one_task_per_chunk(
    client, db_session, alice, redis_db
):
    rows = [failed_row(db_session, alice) for _ in range(CHUNK_SIZE + 1)]
    token = sign_in(client, alice)
    response = post_bulk(client, token, {"execution_ids": [str(r.execution_id) for r in rows]})
    assert response.status_code == 202, response.json
    body = response.json
    assert body["total"] == CHUNK_SIZE + 1
    assert body["status_url"] == f"/api/purchases/retry-batches/{body['batch_id']}"
    assert response.headers["Location"] == body["status_url"]
    assert queued_chunks(redis_db) == [[body["batch_id"], 0], [body["batch_id"], 1]]

    state = client.get(body["status_url"]).json
    assert state["state"] == "queued" and state["queued"] == CHUNK_SIZE + 1
    assert state["items"][0] == {
        "execution_id": str(rows[0].execution_id),
        "state": "queued",
        "successor_execution_id": None,
        "status_code": None,
        "error": None,
    }
    assert "items" not in client.get(body["status_url"] + "?items=false").json


def test_a_filter_selects_failed_rows_of_the_account_oldest_first(client, db_session, alice):
    account, other = make_account(db_session), make_account(db_session)
    now = utcnow()
    newer = failed_row(db_session, alice, cloud_account_id=account.id, created_at=now)
    older = failed_row(
        db_session, alice, cloud_account_id=account.id, created_at=now - timedelta(hours=1)
    )
    failed_row(db_session, alice, cloud_account_id=other.id)
    make_execution(db_session, Status.COMPLETED, created_by=alice, cloud_account_id=account.id)
    matching_error = failed_row(
        db_session, alice, cloud_account_id=account.id, error="Capacity 50% gone_", created_at=now
    )
    token = sign_in(client, alice)

    response = post_bulk(client, token, {"filter": {"cloud_account_id": str(account.id)}})
    assert response.status_code == 202, response.json
    items = client.get(response.json["status_url"]).json["items"]
    assert {item["execution_id"] for item in items} == {
        str(r.execution_id) for r in (newer, older, matching_error)
    }
    assert items[0]["execution_id"] == str(older.execution_id)

    narrowed = post_bulk(client, token, {"filter": {"error_contains": "50% GONE_"}})
    assert narrowed.json["total"] == 1


def test_10001_ids_is_400_and_records_nothing(client, db_session, alice, redis_db):
    token = sign_in(client, alice)
    ids = [str(uuid.uuid4()) for _ in range(10_001)]
    response = post_bulk(client, token, {"execution_ids": ids})
    assert response.status_code == 400
    assert response.json["max_execution_ids"] == 10_000
    assert count(db_session, RetryBatch) == 0 and count(db_session, RetryBatchItem) == 0
    assert queued_chunks(redis_db) == []


@pytest.mark.parametrize(
    "body",
    [
        None,
        "ids",
        {"execution_ids": []},
        {"execution_ids": "x"},
        {"execution_ids": [None]},
        {"execution_ids": ["x" * 101]},
        {"filter": {"status": "sleeping"}},
        {"filter": {"created_before": "soon"}},
        {"filter": {"cloud_account_id": 7}},
        {"filter": []},
        {"execution_ids": ["x"], "force": 1},
    ],
)
def test_a_malformed_request_is_400_and_records_nothing(client, db_session, alice, body):
    token = sign_in(client, alice)
    response = post_bulk(client, token, body)
    assert response.status_code == 400, response.json
    assert isinstance(response.json["error"], str)
    assert count(db_session, RetryBatch) == 0


def test_no_session_is_401_and_no_csrf_token_is_refused(client, db_session, alice, redis_db):
    row = failed_row(db_session, alice)
    assert post_bulk(client, None, {"execution_ids": [str(row.execution_id)]}).status_code == 401
    sign_in(client, alice)
    refused = post_bulk(client, None, {"execution_ids": [str(row.execution_id)]})
    assert refused.status_code in (400, 403)
    assert post_bulk(client, "forged", {"execution_ids": [str(row.execution_id)]}).status_code in (
        400,
        403,
    )
    assert count(db_session, RetryBatch) == 0
    assert queued_chunks(redis_db) == []


def test_a_user_who_may_retry_nothing_is_403_and_audited(client, db_session, redis_db):
    reader = make_user(db_session, groups=("Read-only",))
    row = failed_row(db_session, reader)
    token = sign_in(client, reader)
    response = post_bulk(client, token, {"execution_ids": [str(row.execution_id)]})
    assert response.status_code == 403
    assert "retry-any:purchases or retry-own:purchases" in response.json["error"]
    assert count(db_session, RetryBatch) == 0
    [event] = db_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "retry.batch_refused")
    )
    assert event.actor_user_id == reader.id and event.details["status"] == 403
    assert queued_chunks(redis_db) == []


def test_only_the_requester_or_an_admin_reads_a_batch(client, db_session, alice, bob, admin):
    row = failed_row(db_session, alice)
    token = sign_in(client, alice)
    status_url = post_bulk(client, token, {"execution_ids": [str(row.execution_id)]}).json[
        "status_url"
    ]
    client.post("/api/auth/logout", headers={"X-CSRFToken": token})
    sign_in(client, bob)
    assert client.get(status_url).status_code == 403
    sign_in(client, admin)
    assert client.get(status_url).status_code == 200
    assert client.get("/api/purchases/retry-batches/not-a-uuid").status_code == 400
    assert client.get(f"/api/purchases/retry-batches/{uuid.uuid4()}").status_code == 404


# --- A filter is the history filter, over failed rows only ----------------------------

NOT_FAILED = [status.value for status in Status if status not in RETRYABLE]


@pytest.mark.parametrize("status", NOT_FAILED)
def test_a_filter_naming_another_status_is_400_and_records_nothing(
    client, db_session, alice, redis_db, status
):
    """Only a failed or partially completed row can be retried, so such a filter could
    only ever retry nothing.
    (Before: 202, a batch of that status's rows, each refused.)"""
    make_execution(db_session, Status(status), created_by=alice, recommendations=[recommendation()])
    token = sign_in(client, alice)
    response = post_bulk(client, token, {"filter": {"status": status}})
    assert response.status_code == 400, response.json
    assert response.json == {
        "error": 'only failed or partially completed executions can be retried: "status" '
        f'must be "failed" or "partially_completed", not {status!r}'
    }
    assert count(db_session, RetryBatch) == 0 and count(db_session, RetryBatchItem) == 0
    [event] = db_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "retry.batch_refused")
    )
    assert event.actor_user_id == alice.id and event.details["status"] == 400
    assert queued_chunks(redis_db) == []


@pytest.mark.parametrize("field", ["stauts", "account_id", "search", "page"])
def test_a_field_the_history_filter_does_not_have_is_400_naming_it(
    client, db_session, alice, redis_db, field
):
    """A typo must not widen the filter to every failed row."""
    failed_row(db_session, alice)
    token = sign_in(client, alice)
    response = post_bulk(client, token, {"filter": {field: "failed"}})
    assert response.status_code == 400, response.json
    assert response.json == {"error": f"filter.{field} is not a field of this request"}
    assert count(db_session, RetryBatch) == 0
    assert queued_chunks(redis_db) == []


def test_no_status_means_failed_and_the_batch_records_the_filter_it_resolved(
    client, db_session, alice
):
    account = make_account(db_session)
    row = failed_row(db_session, alice, cloud_account_id=account.id)
    make_execution(db_session, Status.COMPLETED, created_by=alice, cloud_account_id=account.id)
    token = sign_in(client, alice)

    implicit = post_bulk(client, token, {"filter": {"cloud_account_id": str(account.id)}})
    explicit = post_bulk(
        client, token, {"filter": {"cloud_account_id": str(account.id), "status": "failed"}}
    )
    for response in (implicit, explicit):
        assert response.status_code == 202, response.json
        body = client.get(response.json["status_url"]).json
        assert body["selection"] == {
            "filter": {"status": "failed", "cloud_account_id": str(account.id)}
        }
        assert [item["execution_id"] for item in body["items"]] == [str(row.execution_id)]


def test_a_filter_by_execution_id_names_that_row_only(client, db_session, alice):
    row, other = failed_row(db_session, alice), failed_row(db_session, alice)
    token = sign_in(client, alice)
    response = post_bulk(client, token, {"filter": {"execution_id": str(row.execution_id)}})
    assert response.status_code == 202, response.json
    items = client.get(response.json["status_url"]).json["items"]
    assert [item["execution_id"] for item in items] == [str(row.execution_id)]
    assert str(other.execution_id) not in json.dumps(items)


def test_a_bulk_batch_is_no_retry_request_and_a_retry_request_is_one_row(client, db_session, alice):
    """The two reads share one table: a bulk batch's id is 404 where a single retry is
    read, and a single retry reads as the request of its one row."""
    rows = [failed_row(db_session, alice) for _ in range(2)]
    token = sign_in(client, alice)
    batch = post_bulk(client, token, {"execution_ids": [str(r.execution_id) for r in rows]})
    assert batch.status_code == 202, batch.json
    missing = client.get(f"/api/purchases/retry-requests/{batch.json['batch_id']}")
    assert missing.status_code == 404
    assert missing.json == {"error": f"no retry request {batch.json['batch_id']}"}

    single = client.post(
        f"/api/purchases/retry/{rows[0].execution_id}", headers={"X-CSRFToken": token}
    )
    assert single.status_code == 202, single.json
    request = client.get(single.json["status_url"]).json
    assert (request["request_id"], request["retry_of"]) == (
        single.json["request_id"],
        str(rows[0].execution_id),
    )
