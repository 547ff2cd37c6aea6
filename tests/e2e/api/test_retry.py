"""`POST /api/purchases/retry/<id>` and `GET /api/purchases/retry-requests/<id>` over HTTP.

The web half of a retry: every check in the documented order (docs/api.md), each refusal
answered as `{error, ...details}` and recorded as a `retry.refused` audit event, and an
accepted retry recorded as one queued single retry (a batch of one) handed to the
worker. Nothing here runs a worker: the successor is the worker's to write, so none may
appear.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from kombu.exceptions import OperationalError as KombuOperationalError
from sqlalchemy import func, select

from app import task_names
from app.db import utcnow
from app.domain.retry import MALFORMED_HINT, OPS_HINTS, RETRYABLE
from app.domain.statuses import Status
from app.models import AuditEvent, PurchaseExecution, RetryBatchItem
from app.providers import ProviderRegistry
from app.providers.simulator import SimulatedProvider
from app.services.identity import create_group
from tests.e2e.helpers import MALFORMED_IDS, sign_in, single_retries
from tests.factories import (
    insert_plainly,
    make_account,
    make_execution,
    recommendation,
)

NOT_FAILED = [status for status in Status if status not in RETRYABLE]

# A NUL never reaches the service to be audited: the request door refuses it first
# (tests/e2e/test_door.py).
SERVICE_MALFORMED_IDS = {name: raw for name, raw in MALFORMED_IDS.items() if "%00" not in raw}


def item(provider: str = "aws", **overrides: Any) -> dict[str, Any]:
    """One recommendation, already attempted once."""
    return recommendation(
        **{"provider": provider, "error": "InsufficientInstanceCapacity", **overrides}
    )


def failed_row(session, creator=None, **fields: Any) -> PurchaseExecution:
    """A failed execution that anyone allowed to may retry, unless `fields` say otherwise."""
    defaults: dict[str, Any] = {
        "error": "InsufficientInstanceCapacity in us-east-1a",
        "recommendations": [item()],
        "retry_attempt_n": 1,
    }
    return make_execution(session, Status.FAILED, created_by=creator, **(defaults | fields))


def retried_row(session, creator=None, **fields: Any) -> PurchaseExecution:
    """A failed row that already has a successor."""
    successor = make_execution(session, Status.PENDING, created_by=creator)
    return failed_row(session, creator, retry_execution_id=successor.execution_id, **fields)


def post_retry(client, token: str | None, execution_id: Any, query: str = ""):
    headers = {"X-CSRFToken": token} if token is not None else {}
    return client.post(f"/api/purchases/retry/{execution_id}{query}", headers=headers)


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def audit_events(session, action: str) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
    return list(session.scalars(query.execution_options(populate_existing=True)))


def queued_task_messages(redis_db) -> list[dict[str, Any]]:
    """The task messages waiting on the `purchases` queue (kombu's Redis list)."""
    return [json.loads(raw) for raw in redis_db.lrange("purchases", 0, -1)]


def assert_refused_and_nothing_written(
    session, response, status: int, *, actor, execution_id=None, executions_before: int
) -> dict[str, Any]:
    """The answer is `{error, ...}` with `status`; one `retry.refused` event records it,
    and there is no retry request and no new execution. Returns the body."""
    assert response.status_code == status, response.json
    body = response.json
    assert isinstance(body["error"], str) and body["error"]
    [event] = audit_events(session, "retry.refused")
    assert event.actor_user_id == actor.id
    assert event.actor_email == actor.email
    assert event.execution_id == execution_id
    assert event.details["status"] == status
    assert event.details["error"] == body["error"]
    assert single_retries(session) == []
    assert count(session, PurchaseExecution) == executions_before
    assert audit_events(session, "retry.requested") == []
    return body


@pytest.fixture
def redrive_unsafe_azure(app, settings, monkeypatch):
    """This app, for one test, with Azure purchases marked as not idempotent."""
    changed = settings.with_overrides(redrive_unsafe_providers=frozenset({"azure"}))
    monkeypatch.setitem(app.extensions, "settings", changed)


# --- Check 1: 401 no session -------------------------------------------------------


@pytest.mark.parametrize("csrf_header", [None, "not-a-token"], ids=["no-token", "bad-token"])
def test_no_session_is_401_before_the_csrf_token_is_looked_at(
    client, db_session, alice, redis_db, csrf_header
):
    row = failed_row(db_session, alice)
    response = post_retry(client, csrf_header, row.execution_id)
    assert response.status_code == 401
    assert response.json == {"error": "authentication required"}
    assert single_retries(db_session) == []
    assert count(db_session, AuditEvent) == 0  # no actor to record: the service never ran
    assert queued_task_messages(redis_db) == []


# --- Check 2: 400 malformed id ------------------------------------------------------


@pytest.mark.parametrize("raw_id", SERVICE_MALFORMED_IDS.values(), ids=SERVICE_MALFORMED_IDS)
def test_a_malformed_id_is_400_and_audited(client, db_session, alice, raw_id):
    token = sign_in(client, alice)
    response = post_retry(client, token, raw_id)
    body = assert_refused_and_nothing_written(
        db_session, response, 400, actor=alice, executions_before=0
    )
    assert body["error"].startswith("malformed execution id")
    assert len(body["error"]) < 200  # huge input is never echoed back
    assert set(body) == {"error"}


# --- Check 3: 404 unknown id -----------------------------------------------------


def test_an_unknown_id_is_404_and_audited(client, db_session, alice):
    token = sign_in(client, alice)
    unknown = uuid.uuid4()
    response = post_retry(client, token, unknown)
    body = assert_refused_and_nothing_written(
        db_session, response, 404, actor=alice, executions_before=0
    )
    assert body == {"error": f"no execution {unknown}"}


def test_an_unknown_id_is_404_even_for_a_user_who_may_not_retry(client, db_session, viewer):
    token = sign_in(client, viewer)
    response = post_retry(client, token, uuid.uuid4())
    assert_refused_and_nothing_written(db_session, response, 404, actor=viewer, executions_before=0)


# --- Check 4: 403 not allowed, before anything about the row's state or lineage --------

FORBIDDEN = {
    "retry-own-on-someone-elses-row": ("alice", "bob"),
    "retry-own-on-a-row-without-creator": ("alice", None),
    "read-only-on-own-row": ("viewer", "viewer"),
    "read-only-on-someone-elses-row": ("viewer", "bob"),
}


@pytest.mark.parametrize("already_retried", [False, True], ids=["fresh", "already-retried"])
@pytest.mark.parametrize("force", ["", "?force=true"], ids=["plain", "forced"])
@pytest.mark.parametrize(("actor_name", "creator_name"), FORBIDDEN.values(), ids=FORBIDDEN)
def test_a_user_who_may_not_retry_gets_403_and_learns_nothing_about_the_row(
    request, client, db_session, actor_name, creator_name, already_retried, force
):
    actor = request.getfixturevalue(actor_name)
    creator = request.getfixturevalue(creator_name) if creator_name else None
    # Every later check would refuse too: the 403 must come first and say nothing of them.
    build = retried_row if already_retried else failed_row
    row = build(db_session, creator, error="IAM denied: iam:PassRole", retry_attempt_n=9)
    successor_id = row.retry_execution_id
    before = count(db_session, PurchaseExecution)
    token = sign_in(client, actor)
    response = post_retry(client, token, row.execution_id, force)
    body = assert_refused_and_nothing_written(
        db_session,
        response,
        403,
        actor=actor,
        execution_id=row.execution_id,
        executions_before=before,
    )
    assert set(body) == {"error"}
    assert body["error"].startswith("not allowed to retry this execution")
    if successor_id is not None:
        assert str(successor_id) not in response.get_data(as_text=True)
        assert str(successor_id).replace("-", "") not in response.get_data(as_text=True)


# --- Check 5: 409 not failed ------------------------------------------------------


@pytest.mark.parametrize("status", NOT_FAILED, ids=[status.value for status in NOT_FAILED])
def test_only_failed_rows_can_be_retried(client, db_session, alice, status):
    row = make_execution(db_session, status, created_by=alice, recommendations=[item()])
    token = sign_in(client, alice)
    response = post_retry(client, token, row.execution_id, "?force=true")
    body = assert_refused_and_nothing_written(
        db_session, response, 409, actor=alice, execution_id=row.execution_id, executions_before=1
    )
    assert body == {
        "error": "only failed or partially completed executions can be retried; "
        f"this one is {status.value}"
    }


# --- Check 6: 409 already retried -------------------------------------------------


@pytest.mark.parametrize("force", ["", "?force=true"], ids=["plain", "forced"])
def test_an_already_retried_row_names_its_successor(client, db_session, alice, force):
    # Also a persistent failure at the threshold: "already retried" comes first.
    row = retried_row(
        db_session, alice, error="SES sandbox: address not verified", retry_attempt_n=5
    )
    token = sign_in(client, alice)
    response = post_retry(client, token, row.execution_id, force)
    body = assert_refused_and_nothing_written(
        db_session, response, 409, actor=alice, execution_id=row.execution_id, executions_before=2
    )
    assert body == {
        "error": "this execution has already been retried",
        "retry_execution_id": str(row.retry_execution_id),
    }
    [event] = audit_events(db_session, "retry.refused")
    assert event.details["retry_execution_id"] == str(row.retry_execution_id)


# --- Check 7: 409 provider cannot re-drive safely -----------------------------------


@pytest.mark.parametrize("force", ["", "?force=true"], ids=["plain", "force-does-not-override"])
def test_a_redrive_unsafe_provider_is_refused_even_with_force(
    client, db_session, alice, redrive_unsafe_azure, force
):
    # Also a persistent failure at the threshold: the provider check comes before both.
    row = failed_row(
        db_session,
        alice,
        recommendations=[item("aws"), item("Azure", resource_type="Standard_D4s_v5")],
        error="FROM_EMAIL not configured for this deployment",
        retry_attempt_n=7,
    )
    token = sign_in(client, alice)
    response = post_retry(client, token, row.execution_id, force)
    body = assert_refused_and_nothing_written(
        db_session, response, 409, actor=alice, execution_id=row.execution_id, executions_before=1
    )
    assert set(body) == {"error", "ops_hint", "redrive_unsafe"}
    assert body["redrive_unsafe"] is True
    assert "azure" in body["ops_hint"]
    assert "azure" in body["error"]


@pytest.mark.parametrize(
    ("account_provider", "items"),
    [("azure", [item("aws")]), ("aws", [item("  AZURE ")])],
    ids=["the-accounts-provider", "an-items-provider-spelled-loosely"],
)
def test_redrive_safety_asks_the_account_and_every_item(
    client, db_session, alice, redrive_unsafe_azure, account_provider, items
):
    """(Before: only the items' `provider` was read, and as written: " AZURE " passed.)"""
    account = make_account(db_session, provider=account_provider)
    row = failed_row(db_session, alice, recommendations=items, cloud_account_id=account.id)
    response = post_retry(client, sign_in(client, alice), row.execution_id, "?force=true")
    assert response.status_code == 409
    assert response.json["redrive_unsafe"] is True and "azure" in response.json["ops_hint"]


@pytest.mark.parametrize("force", ["", "?force=true"], ids=["plain", "force-does-not-override"])
@pytest.mark.parametrize(
    "items",
    [[item("aws"), item("oracle")], [{**item("aws"), "provider": ""}]],
    ids=["a-provider-nobody-knows", "an-item-without-provider-on-an-account-less-row"],
)
def test_a_provider_the_registry_does_not_know_is_unsafe_even_with_force(
    client, db_session, alice, items, force
):
    """Fail closed: nothing is configured, yet a provider no registered purchaser
    declares idempotent cannot be re-driven."""
    row = failed_row(db_session, alice, recommendations=items)
    response = post_retry(client, sign_in(client, alice), row.execution_id, force)
    body = assert_refused_and_nothing_written(
        db_session, response, 409, actor=alice, execution_id=row.execution_id, executions_before=1
    )
    assert body["redrive_unsafe"] is True and body["ops_hint"]


def test_a_registered_provider_that_cannot_find_a_lost_purchase_is_unsafe(
    app, client, db_session, alice, monkeypatch
):
    registry = ProviderRegistry.of(
        [SimulatedProvider("aws"), SimulatedProvider("azure", findable=False)]
    )
    monkeypatch.setitem(app.extensions, "providers", registry)
    safe = failed_row(db_session, alice, recommendations=[item("aws")])
    unsafe = failed_row(db_session, alice, recommendations=[item("azure")])
    token = sign_in(client, alice)
    assert post_retry(client, token, safe.execution_id).status_code == 202
    response = post_retry(client, token, unsafe.execution_id, "?force=true")
    assert response.status_code == 409 and response.json["redrive_unsafe"] is True
    assert "azure" in response.json["ops_hint"]


@pytest.mark.parametrize("recommendations", ["[1]", "{}"])
def test_malformed_recommendations_are_refused_with_the_reason(
    client, db_session, alice, recommendations
):
    execution_id = insert_plainly(db_session, created_by=alice, recommendations=recommendations)
    response = post_retry(client, sign_in(client, alice), execution_id)
    body = assert_refused_and_nothing_written(
        db_session,
        response,
        409,
        actor=alice,
        execution_id=uuid.UUID(execution_id),
        executions_before=1,
    )
    assert body["failure_reason"].startswith("malformed recommendations:")
    assert body["ops_hint"] == MALFORMED_HINT


def test_a_provider_is_redrive_safe_unless_configured_otherwise(client, db_session, alice):
    row = failed_row(db_session, alice, recommendations=[item("azure")])
    token = sign_in(client, alice)
    assert post_retry(client, token, row.execution_id).status_code == 202


# --- Check 8: 409 persistent failure -------------------------------------------------

PERSISTENT = {
    "from-email": ("Approval email: from_email NOT CONFIGURED for this deployment", 0),
    "ses-sandbox": ("send failed: 554 Message rejected: ses SANDBOX recipient", 1),
    "ses-domain": ("send failed: SES Domain Not Verified (example.com)", 2),
    "iam": ("AccessDenied: iam denied for ec2:PurchaseReservedInstancesOffering", 3),
}


@pytest.mark.parametrize("force", ["", "?force=true"], ids=["plain", "force-does-not-override"])
@pytest.mark.parametrize(("error", "hint_index"), PERSISTENT.values(), ids=PERSISTENT)
def test_a_persistent_failure_answers_its_ops_hint_in_any_letter_case(
    client, db_session, alice, error, hint_index, force
):
    # At the threshold too: the persistent failure comes first.
    row = failed_row(db_session, alice, error=error, retry_attempt_n=5)
    token = sign_in(client, alice)
    response = post_retry(client, token, row.execution_id, force)
    body = assert_refused_and_nothing_written(
        db_session, response, 409, actor=alice, execution_id=row.execution_id, executions_before=1
    )
    assert body == {
        "error": "this failure will recur until an operator fixes its cause",
        "ops_hint": OPS_HINTS[hint_index][1],
        "failure_reason": error,
    }


# --- Check 9: 409 threshold; force overrides it ------------------------------------


@pytest.mark.parametrize(
    ("attempt", "query", "accepted"),
    [
        (0, "", True),
        (4, "", True),
        (5, "", False),
        (5, "?force=false", False),
        (5, "?force=true", True),
        (5, "?force=TRUE", True),
        (12, "?force=1", True),
    ],
)
def test_the_threshold_refuses_at_five_attempts_unless_forced(
    client, db_session, alice, redis_db, attempt, query, accepted
):
    row = failed_row(db_session, alice, retry_attempt_n=attempt)
    token = sign_in(client, alice)
    response = post_retry(client, token, row.execution_id, query)
    if accepted:
        assert response.status_code == 202, response.json
        [queued] = single_retries(db_session)
        assert queued.force is ("force" in query)
        return
    body = assert_refused_and_nothing_written(
        db_session, response, 409, actor=alice, execution_id=row.execution_id, executions_before=1
    )
    assert body["retry_attempt_n"] == attempt
    assert body["threshold"] == 5
    assert set(body) == {"error", "retry_attempt_n", "threshold"}
    assert queued_task_messages(redis_db) == []


def test_the_threshold_comes_from_the_settings(
    client, db_session, alice, app, settings, monkeypatch
):
    monkeypatch.setitem(app.extensions, "settings", settings.with_overrides(retry_threshold=2))
    row = failed_row(db_session, alice, retry_attempt_n=2)
    token = sign_in(client, alice)
    response = post_retry(client, token, row.execution_id)
    assert response.status_code == 409
    assert (response.json["retry_attempt_n"], response.json["threshold"]) == (2, 2)


# --- Accepted: 202, one queued request, a task with ids only ------------------------


def test_an_accepted_retry_answers_202_and_records_one_queued_request(
    client, db_session, alice, redis_db
):
    row = failed_row(db_session, alice)
    token = sign_in(client, alice)
    response = post_retry(client, token, row.execution_id)

    assert response.status_code == 202
    body = response.json
    assert set(body) == {"request_id", "status", "status_url"}
    assert body["status"] == "queued"
    assert body["status_url"] == f"/api/purchases/retry-requests/{body['request_id']}"
    assert response.headers["Location"].endswith(body["status_url"])

    [queued] = single_retries(db_session)
    assert str(queued.id) == body["request_id"]
    assert queued.state == "queued"
    assert queued.execution_id == row.execution_id
    assert queued.force is False
    assert queued.requested_by_user_id == alice.id
    assert queued.requested_by_email == alice.email
    assert queued.successor_execution_id is None

    # The successor is the worker's to write; the row is untouched until then.
    assert count(db_session, PurchaseExecution) == 1
    db_session.refresh(row)
    assert (row.status, row.retry_execution_id) == ("failed", None)
    [requested] = audit_events(db_session, "retry.requested")
    assert requested.details == {"request_id": body["request_id"], "force": False}
    assert audit_events(db_session, "retry.refused") == []

    [message] = queued_task_messages(redis_db)
    assert message["headers"]["task"] == task_names.RETRY
    assert message["headers"]["argsrepr"] == repr([body["request_id"], 0])
    # Waiting in the broker: no worker holds it, and the sweep queues it again should
    # none claim it before its lease lapses.
    assert queued.lease_owner is None
    assert queued.lease_expires_at is not None and queued.lease_expires_at > utcnow()


def test_a_broker_outage_still_answers_202_with_the_request_kept_for_beat(
    app, client, db_session, alice, redis_db, monkeypatch
):
    def broker_down(*_args, **_kwargs):
        raise KombuOperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(app.extensions["celery"], "send_task", broker_down)
    row = failed_row(db_session, alice)
    response = post_retry(client, sign_in(client, alice), row.execution_id)

    assert response.status_code == 202
    [kept] = single_retries(db_session)
    assert (str(kept.id), kept.state) == (response.json["request_id"], "queued")
    assert queued_task_messages(redis_db) == []


def test_a_forced_retry_records_the_force_flag(client, db_session, alice):
    row = failed_row(db_session, alice, retry_attempt_n=6)
    token = sign_in(client, alice)
    response = post_retry(client, token, row.execution_id, "?force=true")
    assert response.status_code == 202
    [queued] = single_retries(db_session)
    assert queued.force is True
    [requested] = audit_events(db_session, "retry.requested")
    assert requested.details["force"] is True


ALLOWED = {
    "admin-on-someone-elses-row": ("admin", "bob"),
    "admin-on-a-row-without-creator": ("admin", None),
    "retry-any-on-someone-elses-row": ("purchaser", "bob"),
    "retry-any-on-a-row-without-creator": ("purchaser", None),
    "retry-own-on-own-row": ("alice", "alice"),
}


@pytest.mark.parametrize(("actor_name", "creator_name"), ALLOWED.values(), ids=ALLOWED)
def test_who_may_retry(request, client, db_session, actor_name, creator_name):
    actor = request.getfixturevalue(actor_name)
    creator = request.getfixturevalue(creator_name) if creator_name else None
    row = failed_row(db_session, creator)
    token = sign_in(client, actor)
    response = post_retry(client, token, row.execution_id)
    assert response.status_code == 202, response.json
    [queued] = single_retries(db_session)
    assert queued.requested_by_user_id == actor.id


# --- CSRF and odd input --------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "forged-token"], ids=["missing", "empty", "forged"])
def test_a_signed_in_retry_without_a_valid_csrf_token_is_refused_and_writes_nothing(
    client, db_session, alice, redis_db, token
):
    row = failed_row(db_session, alice)
    sign_in(client, alice)
    response = post_retry(client, token, row.execution_id)
    assert response.status_code == 400
    assert "CSRF" in response.json["error"]
    assert single_retries(db_session) == []
    assert count(db_session, AuditEvent) == 0  # sign-in itself records no audit event
    assert queued_task_messages(redis_db) == []


@pytest.mark.parametrize(
    "query",
    ["?force=maybe", "?force=tru%C3%A9", "?force=maybe&force=true"],
    ids=["maybe", "unicode", "repeated-first-wins"],  # a NUL is refused at the door
)
def test_an_unrecognized_force_is_400_and_writes_nothing(client, db_session, alice, query):
    row = failed_row(db_session, alice)
    token = sign_in(client, alice)
    response = post_retry(client, token, row.execution_id, query)
    assert response.status_code == 400
    assert response.json == {"error": "force must be true or false"}
    assert single_retries(db_session) == []


def test_a_repeated_force_takes_the_first_value(client, db_session, alice):
    row = failed_row(db_session, alice, retry_attempt_n=5)
    token = sign_in(client, alice)
    response = post_retry(client, token, row.execution_id, "?force=true&force=maybe")
    assert response.status_code == 202


def test_a_get_on_the_retry_url_changes_nothing(client, db_session, alice):
    row = failed_row(db_session, alice)
    sign_in(client, alice)
    response = client.get(f"/api/purchases/retry/{row.execution_id}")
    assert 400 <= response.status_code < 500
    assert "error" in response.json
    assert single_retries(db_session) == []


# --- GET /api/purchases/retry-requests/<id> ------------------------------------------


def queue_retry(client, db_session, actor, **row_fields) -> tuple[str, PurchaseExecution]:
    """Sign `actor` in, retry a fresh failed row of theirs; the request id and the row."""
    row = failed_row(db_session, actor, **row_fields)
    token = sign_in(client, actor)
    query = "?force=true" if row.retry_attempt_n >= 5 else ""
    response = post_retry(client, token, row.execution_id, query)
    assert response.status_code == 202, response.json
    return response.json["request_id"], row


def test_the_requester_reads_their_queued_request(client, db_session, alice):
    request_id, row = queue_retry(client, db_session, alice, retry_attempt_n=5)
    response = client.get(f"/api/purchases/retry-requests/{request_id}")
    assert response.status_code == 200
    body = response.json
    assert body["request_id"] == request_id
    assert body["state"] == "queued"
    assert body["retry_of"] == str(row.execution_id)
    assert body["force"] is True
    assert body["execution_id"] is None
    assert body["retry_attempt_n"] is None
    assert body["error"] is None
    assert body["requested_by"] == alice.email


def test_a_settled_rejection_shows_the_error_and_details_the_web_layer_would_give(
    client, db_session, alice
):
    request_id, row = queue_retry(client, db_session, alice)
    queued = db_session.get(RetryBatchItem, (uuid.UUID(request_id), 0))
    queued.state = "rejected"
    queued.error = "this execution has already been retried"
    queued.status_code = 409
    queued.details = {"retry_execution_id": "11111111-1111-1111-1111-111111111111"}
    db_session.flush()
    body = client.get(f"/api/purchases/retry-requests/{request_id}").json
    assert body["state"] == "rejected"
    assert body["error"] == "this execution has already been retried"
    assert body["retry_execution_id"] == "11111111-1111-1111-1111-111111111111"
    assert body["status_code"] == 409
    assert body["retry_of"] == str(row.execution_id)


def test_an_admin_reads_anyones_request(app, client, db_session, alice, admin):
    request_id, _ = queue_retry(client, db_session, alice)
    admin_client = app.test_client()
    sign_in(admin_client, admin)
    response = admin_client.get(f"/api/purchases/retry-requests/{request_id}")
    assert response.status_code == 200
    assert response.json["request_id"] == request_id


@pytest.mark.parametrize("other_name", ["bob", "purchaser", "viewer"])
def test_another_user_may_not_read_a_request(app, request, client, db_session, alice, other_name):
    request_id, row = queue_retry(client, db_session, alice)
    other_client = app.test_client()
    sign_in(other_client, request.getfixturevalue(other_name))
    response = other_client.get(f"/api/purchases/retry-requests/{request_id}")
    assert response.status_code == 403
    assert set(response.json) == {"error"}
    assert str(row.execution_id) not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("raw_id", "status"),
    [
        ("not-a-uuid", 400),
        ("x" * 10_000, 400),
        ("%00", 400),
        (str(uuid.UUID(int=0)), 404),
        (str(uuid.uuid4()), 404),
    ],
    ids=["word", "10k-chars", "nul", "nil-uuid", "unknown"],
)
def test_a_malformed_or_unknown_request_id(client, alice, raw_id, status):
    sign_in(client, alice)
    response = client.get(f"/api/purchases/retry-requests/{raw_id}")
    assert response.status_code == status
    assert set(response.json) == {"error"}
    assert len(response.json["error"]) < 200


def test_a_requester_who_lost_view_may_no_longer_read_their_request(client, db_session, alice):
    """(Before: the requester kept reading the row's error and lineage.)"""
    request_id, row = queue_retry(client, db_session, alice, error="secret-ish error")
    assert client.get(f"/api/purchases/retry-requests/{request_id}").status_code == 200
    alice.groups = [
        create_group(
            db_session, "Approvers only", ["approve-own:purchases"], restricts_defaults=True
        )
    ]
    db_session.flush()
    response = client.get(f"/api/purchases/retry-requests/{request_id}")
    assert response.status_code == 403
    assert set(response.json) == {"error"} and "view:purchases" in response.json["error"]
    assert "secret-ish" not in response.get_data(as_text=True)
    assert str(row.execution_id) not in response.get_data(as_text=True)


def test_reading_a_request_needs_a_session(app, client, db_session, alice):
    request_id, _ = queue_retry(client, db_session, alice)
    response = app.test_client().get(f"/api/purchases/retry-requests/{request_id}")
    assert response.status_code == 401
    assert response.json == {"error": "authentication required"}
