"""A single retry over the JSON API, settled by a real Celery worker.

`POST /api/purchases/retry/<id>` records a batch of one and queues its one chunk;
the worker settles it, and `GET /api/purchases/retry-requests/<id>` reads the outcome:
the successor on success, or the refusal the web layer would have answered when the
row changed between the request and the worker (checked again against the row as it
is then). The audit trail names the request on every event.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from app.db import unit_of_work
from app.domain.statuses import Status
from app.models import AuditEvent, PurchaseExecution, User
from tests.e2e.helpers import sign_in, single_retries
from tests.factories import make_execution, make_user, recommendation
from tests.support.commands import wait_until

pytestmark = pytest.mark.worker


@pytest.fixture
def requester(committed_db: Any) -> User:
    with unit_of_work() as session:
        return make_user(session, "requester@example.com")


@dataclass(frozen=True)
class Web:
    """The API as `requester` calls it, signed in, each call in an app context of its
    own as the server gives every request (the tests' own context, held open by
    `committed_db`, would otherwise be shared, with its session's snapshot)."""

    app: Flask
    client: FlaskClient
    token: str

    def post(self, url: str) -> TestResponse:
        with self.app.app_context():
            return self.client.post(url, headers={"X-CSRFToken": self.token})

    def get(self, url: str) -> TestResponse:
        with self.app.app_context():
            return self.client.get(url)


@pytest.fixture
def web(app: Flask, committed_db: Any, requester: User) -> Web:
    client = app.test_client()
    with app.app_context():
        token = sign_in(client, requester)
    return Web(app, client, token)


def failed_row(creator: User, **fields: Any) -> uuid.UUID:
    values = {
        "error": "InsufficientInstanceCapacity",
        "recommendations": [recommendation()],
        "retry_attempt_n": 1,
    }
    with unit_of_work() as session:
        row = make_execution(
            session, Status.FAILED, created_by=session.merge(creator), **(values | fields)
        )
        return row.execution_id


def post_retry(web: Web, execution_id: uuid.UUID) -> dict[str, Any]:
    response = web.post(f"/api/purchases/retry/{execution_id}")
    assert response.status_code == 202, response.json
    return response.json


def settled(web: Web, status_url: str) -> dict[str, Any]:
    """The request as the API reads it, once the worker has settled it."""

    def read() -> dict[str, Any] | None:
        response = web.get(status_url)
        assert response.status_code == 200, response.json
        return response.json if response.json["state"] != "queued" else None

    return wait_until(read, timeout=30, what=f"{status_url} to settle")


def trail(request_id: str) -> list[tuple[str, uuid.UUID | None, dict[str, Any]]]:
    """The audit events that name the request, oldest first."""
    with unit_of_work() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        return [
            (event.action, event.execution_id, event.details)
            for event in events
            if event.details.get("request_id") == request_id
        ]


def test_the_worker_settles_a_retry_and_the_api_reads_its_successor(
    web, requester, celery_worker, mailbox
):
    row_id = failed_row(requester)
    accepted = post_retry(web, row_id)
    request_id = accepted["request_id"]

    body = settled(web, accepted["status_url"])
    assert body["state"] == "succeeded", body
    assert (body["request_id"], body["retry_of"]) == (request_id, str(row_id))
    assert body["error"] is None and body["force"] is False
    assert body["retry_attempt_n"] == 2
    assert body["finished_at"] is not None
    successor_id = uuid.UUID(body["execution_id"])
    with unit_of_work() as session:
        predecessor = session.get(PurchaseExecution, row_id)
        successor = session.get(PurchaseExecution, successor_id)
        assert predecessor.retry_execution_id == successor_id
        assert (successor.retry_attempt_n, successor.created_by_user_id) == (2, requester.id)
        [recorded] = single_retries(session)
        assert (recorded.id, recorded.state) == (uuid.UUID(request_id), "succeeded")
        assert recorded.successor_execution_id == successor_id
    actions = [(action, execution_id) for action, execution_id, _ in trail(request_id)]
    assert actions == [
        ("retry.requested", row_id),
        ("retry.succeeded", row_id),
        ("execution.created", successor_id),
    ]


def test_a_row_retried_meanwhile_is_the_worker_s_refusal_read_as_the_api_would_answer(
    web, requester, redis_db: redis.Redis, request: pytest.FixtureRequest
):
    row_id = failed_row(requester)
    accepted = post_retry(web, row_id)  # no worker yet: the chunk waits in Redis
    request_id = accepted["request_id"]
    with unit_of_work() as session:
        other = make_execution(session, Status.PENDING, created_by=session.merge(requester))
        session.get(PurchaseExecution, row_id).retry_execution_id = other.execution_id
        other_id = other.execution_id

    request.getfixturevalue("celery_worker")
    body = settled(web, accepted["status_url"])
    assert body["state"] == "rejected", body
    assert body["status_code"] == 409
    assert body["error"] == "this execution has already been retried"
    assert body["retry_execution_id"] == str(other_id)
    assert body["execution_id"] is None and body["finished_at"] is not None
    with unit_of_work() as session:
        assert session.get(PurchaseExecution, row_id).retry_execution_id == other_id
        count = select(func.count()).select_from(PurchaseExecution)
        assert session.scalar(count) == 2  # no successor of its own
    [requested, rejected] = trail(request_id)
    assert requested[0] == "retry.requested"
    assert rejected[:2] == ("retry.rejected", row_id)
    assert rejected[2]["status"] == 409
    assert rejected[2]["retry_execution_id"] == str(other_id)
