"""`POST /api/purchases/approve/<id>` and `POST /api/purchases/cancel/<id>` by session.

Approve moves `pending` to `approved` and queues the executor; cancel moves it to
`cancelled` and deletes the row's suppressions in the same transaction. The checks run
in the retry's order (401, 400, 404, 403, 409), with the roles and permissions of
docs/operations.md and the optional four-eyes rule; every refusal is answered as
`{error, ...details}`, recorded as an `execution.<action>_refused` audit event, and
changes nothing else. No worker runs here: an approval's task waits in the test Redis.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from app import task_names
from app.domain.statuses import Status
from app.models import AuditEvent, PurchaseExecution, PurchaseSuppression
from app.services.identity import create_group
from tests.e2e.helpers import MALFORMED_IDS, sign_in
from tests.factories import make_execution, make_suppression, make_user, recommendation

ACTIONS = ["approve", "cancel"]
OUTCOME = {"approve": Status.APPROVED, "cancel": Status.CANCELLED}
NOT_PENDING = [status for status in Status if status is not Status.PENDING]

# A NUL never reaches the service to be audited: the request door refuses it first
# (tests/e2e/test_door.py).
SERVICE_MALFORMED_IDS = {name: raw for name, raw in MALFORMED_IDS.items() if "%00" not in raw}


def post_decision(client, action: str, token: str | None, execution_id: Any):
    headers = {"X-CSRFToken": token} if token is not None else {}
    return client.post(f"/api/purchases/{action}/{execution_id}", headers=headers)


def pending_row(session, creator=None, **fields: Any) -> PurchaseExecution:
    return make_execution(
        session, Status.PENDING, created_by=creator, recommendations=[recommendation()], **fields
    )


def reload(session, row: PurchaseExecution) -> PurchaseExecution:
    query = select(PurchaseExecution).where(PurchaseExecution.execution_id == row.execution_id)
    return session.scalars(query.execution_options(populate_existing=True)).one()


def state_of(session, row: PurchaseExecution) -> dict[str, Any]:
    """What a decision may change on `row`, as it is in the database now."""
    fresh = reload(session, row)
    suppressions = session.scalar(
        select(func.count())
        .select_from(PurchaseSuppression)
        .where(PurchaseSuppression.execution_id == row.execution_id)
    )
    return {
        "status": fresh.status,
        "approved_by": fresh.approved_by,
        "approved_by_user_id": fresh.approved_by_user_id,
        "cancelled_by": fresh.cancelled_by,
        "updated_at": fresh.updated_at,
        "suppressions": suppressions,
    }


def audit_events(session, action: str | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    return list(session.scalars(query.execution_options(populate_existing=True)))


def queued_task_messages(redis_db) -> list[dict[str, Any]]:
    """The task messages waiting on the `purchases` queue (kombu's Redis list)."""
    return [json.loads(raw) for raw in redis_db.lrange("purchases", 0, -1)]


def assert_refused(
    session,
    redis_db,
    response,
    status: int,
    *,
    action: str,
    actor,
    rows: list[PurchaseExecution],
    states_before: list[dict[str, Any]],
    execution_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """Answered `{error, ...}` with `status`; the trail holds exactly one
    `execution.<action>_refused` event for it and nothing else; no row changed and
    nothing was queued. Returns the body."""
    assert response.status_code == status, response.json
    body = response.json
    assert isinstance(body["error"], str) and body["error"]
    [event] = audit_events(session)
    assert event.action == f"execution.{action}_refused"
    assert event.actor_user_id == actor.id
    assert event.actor_email == actor.email
    assert event.execution_id == execution_id
    assert event.details["status"] == status
    assert event.details["error"] == body["error"]
    assert event.details["via"] == "session"
    assert [state_of(session, row) for row in rows] == states_before
    assert queued_task_messages(redis_db) == []
    return body


def assert_decided(
    session, redis_db, response, row: PurchaseExecution, *, action: str, actor
) -> None:
    """Answered 200 with the decision; the row moved, the actor is recorded on it and in
    one audit event; an approval (only) queued the executor with the row's id."""
    assert response.status_code == 200, response.json
    fresh = reload(session, row)
    decided_by = {"approved_by": None, "cancelled_by": None}
    decided_by["approved_by" if action == "approve" else "cancelled_by"] = actor.email
    assert response.json == {
        "execution_id": str(row.execution_id),
        "status": OUTCOME[action].value,
        **decided_by,
    }
    assert fresh.status == OUTCOME[action]
    assert fresh.approved_by == decided_by["approved_by"]
    assert fresh.cancelled_by == decided_by["cancelled_by"]
    assert fresh.approved_by_user_id == (actor.id if action == "approve" else None)
    [event] = audit_events(session)
    assert event.action == f"execution.{OUTCOME[action].value}"
    assert event.execution_id == row.execution_id
    assert (event.actor_user_id, event.actor_email) == (actor.id, actor.email)
    assert event.details == {"via": "session"}
    messages = queued_task_messages(redis_db)
    if action == "approve":
        [message] = messages
        assert message["headers"]["task"] == task_names.EXECUTE
        assert message["headers"]["argsrepr"] == repr([str(row.execution_id)])
    else:
        assert messages == []


@pytest.fixture
def four_eyes(app, settings, monkeypatch):
    """This app, for one test, with REQUIRE_DIFFERENT_APPROVER=true."""
    changed = settings.with_overrides(require_different_approver=True)
    monkeypatch.setitem(app.extensions, "settings", changed)


# --- 1: 401 no session ---------------------------------------------------------------


@pytest.mark.parametrize("csrf_header", [None, "not-a-token"], ids=["no-token", "bad-token"])
@pytest.mark.parametrize("target", ["pending", "malformed", "unknown"])
@pytest.mark.parametrize("action", ACTIONS)
def test_no_session_is_401_before_anything_else(
    client, db_session, redis_db, alice, action, target, csrf_header
):
    row = pending_row(db_session, alice)
    before = state_of(db_session, row)
    raw_id = {"pending": row.execution_id, "malformed": "not-a-uuid", "unknown": uuid.uuid4()}
    response = post_decision(client, action, csrf_header, raw_id[target])
    assert response.status_code == 401
    assert response.json == {"error": "authentication required"}
    assert state_of(db_session, row) == before
    assert audit_events(db_session) == []  # no actor to record: the service never ran
    assert queued_task_messages(redis_db) == []


# --- CSRF ----------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "forged-token"], ids=["missing", "empty", "forged"])
@pytest.mark.parametrize("action", ACTIONS)
def test_a_signed_in_decision_without_a_valid_csrf_token_is_400_and_changes_nothing(
    client, db_session, redis_db, alice, action, token
):
    row = pending_row(db_session, alice)
    make_suppression(db_session, row)
    before = state_of(db_session, row)
    sign_in(client, alice)
    response = post_decision(client, action, token, row.execution_id)
    assert response.status_code == 400
    assert "CSRF" in response.json["error"]
    assert state_of(db_session, row) == before
    assert audit_events(db_session) == []  # refused at the door, before the service
    assert queued_task_messages(redis_db) == []


# --- 2: 400 malformed id -------------------------------------------------------------


@pytest.mark.parametrize("raw_id", SERVICE_MALFORMED_IDS.values(), ids=SERVICE_MALFORMED_IDS)
@pytest.mark.parametrize("action", ACTIONS)
def test_a_malformed_id_is_400_and_audited(client, db_session, redis_db, alice, action, raw_id):
    row = pending_row(db_session, alice)
    before = [state_of(db_session, row)]
    token = sign_in(client, alice)
    response = post_decision(client, action, token, raw_id)
    body = assert_refused(
        db_session,
        redis_db,
        response,
        400,
        action=action,
        actor=alice,
        rows=[row],
        states_before=before,
    )
    assert body["error"].startswith("malformed execution id")
    assert len(body["error"]) < 200  # huge input is never echoed back
    assert set(body) == {"error"}


@pytest.mark.parametrize("action", ACTIONS)
def test_a_malformed_id_is_400_even_for_a_user_who_may_decide_nothing(
    client, db_session, redis_db, viewer, action
):
    token = sign_in(client, viewer)
    response = post_decision(client, action, token, "not-a-uuid")
    assert_refused(
        db_session, redis_db, response, 400, action=action, actor=viewer, rows=[], states_before=[]
    )


# --- 3: 404 unknown id ---------------------------------------------------------------


@pytest.mark.parametrize("actor_name", ["alice", "viewer"])
@pytest.mark.parametrize("action", ACTIONS)
def test_an_unknown_id_is_404_and_audited(
    request, client, db_session, redis_db, action, actor_name
):
    actor = request.getfixturevalue(actor_name)
    row = pending_row(db_session, actor)
    before = [state_of(db_session, row)]
    unknown = uuid.uuid4()
    token = sign_in(client, actor)
    response = post_decision(client, action, token, unknown)
    body = assert_refused(
        db_session,
        redis_db,
        response,
        404,
        action=action,
        actor=actor,
        rows=[row],
        states_before=before,
    )
    assert body == {"error": f"no execution {unknown}"}


# --- 4: 403 not allowed, before anything about the row's state -----------------------

FORBIDDEN = {
    "own-permission-on-someone-elses-row": ("alice", "bob"),
    "own-permission-on-a-row-without-creator": ("alice", None),
    "read-only-on-own-row": ("viewer", "viewer"),
    "read-only-on-someone-elses-row": ("viewer", "bob"),
}


@pytest.mark.parametrize("status", [Status.PENDING, Status.APPROVED, Status.CANCELLED])
@pytest.mark.parametrize(("actor_name", "creator_name"), FORBIDDEN.values(), ids=FORBIDDEN)
@pytest.mark.parametrize("action", ACTIONS)
def test_a_user_who_may_not_decide_gets_403_and_learns_nothing_of_the_row(
    request, client, db_session, redis_db, action, actor_name, creator_name, status
):
    actor = request.getfixturevalue(actor_name)
    creator = request.getfixturevalue(creator_name) if creator_name else None
    row = make_execution(db_session, status, created_by=creator)
    make_suppression(db_session, row)
    before = [state_of(db_session, row)]
    token = sign_in(client, actor)
    response = post_decision(client, action, token, row.execution_id)
    body = assert_refused(
        db_session,
        redis_db,
        response,
        403,
        action=action,
        actor=actor,
        rows=[row],
        states_before=before,
        execution_id=row.execution_id,
    )
    assert set(body) == {"error"}  # no `status`: a 403 says nothing of where the row is
    assert body["error"].startswith(f"not allowed to {action} this execution")
    assert status.value not in body["error"]


# --- 5: 409 not pending --------------------------------------------------------------


@pytest.mark.parametrize("status", NOT_PENDING, ids=[status.value for status in NOT_PENDING])
@pytest.mark.parametrize("action", ACTIONS)
def test_only_pending_rows_can_be_decided(client, db_session, redis_db, alice, action, status):
    row = make_execution(db_session, status, created_by=alice)
    make_suppression(db_session, row)
    before = [state_of(db_session, row)]
    token = sign_in(client, alice)
    response = post_decision(client, action, token, row.execution_id)
    body = assert_refused(
        db_session,
        redis_db,
        response,
        409,
        action=action,
        actor=alice,
        rows=[row],
        states_before=before,
        execution_id=row.execution_id,
    )
    past = "approved" if action == "approve" else "cancelled"
    assert body == {
        "error": f"only pending executions can be {past}; this one is {status.value}",
        "status": status.value,
    }
    [event] = audit_events(db_session)
    assert event.details["execution_status"] == status.value  # the row's, beside the 409


@pytest.mark.parametrize("second", ACTIONS)
@pytest.mark.parametrize("first", ACTIONS)
def test_a_second_decision_gets_409_with_the_status_the_first_left(
    app, client, db_session, redis_db, alice, purchaser, first, second
):
    row = pending_row(db_session, alice)
    token = sign_in(client, alice)
    assert post_decision(client, first, token, row.execution_id).status_code == 200
    after_first = state_of(db_session, row)
    queued = queued_task_messages(redis_db)
    other_client = app.test_client()
    token = sign_in(other_client, purchaser)
    response = post_decision(other_client, second, token, row.execution_id)
    assert response.status_code == 409
    assert response.json["status"] == OUTCOME[first].value
    assert state_of(db_session, row) == after_first
    assert queued_task_messages(redis_db) == queued  # the loser queued nothing
    refused = audit_events(db_session, f"execution.{second}_refused")
    assert [
        (event.actor_email, event.details["status"], event.details["execution_status"])
        for event in refused
    ] == [(purchaser.email, 409, OUTCOME[first].value)]
    decided = [event.action for event in audit_events(db_session) if "refused" not in event.action]
    assert decided == [f"execution.{OUTCOME[first].value}"]


# --- RBAC: who may decide whose rows ------------------------------------------------

# (actor, creator of the row, expected answer): the same for approve and for cancel.
MATRIX = {
    "default-own-row": ("alice", "alice", 200),
    "default-someone-elses-row": ("alice", "bob", 403),
    "default-row-without-creator": ("alice", None, 403),
    "purchaser-own-row": ("purchaser", "purchaser", 200),
    "purchaser-someone-elses-row": ("purchaser", "bob", 200),
    "purchaser-row-without-creator": ("purchaser", None, 200),
    "read-only-own-row": ("viewer", "viewer", 403),
    "read-only-someone-elses-row": ("viewer", "bob", 403),
    "read-only-row-without-creator": ("viewer", None, 403),
    "admin-own-row": ("admin", "admin", 200),
    "admin-someone-elses-row": ("admin", "bob", 200),
    "admin-row-without-creator": ("admin", None, 200),
}


@pytest.mark.parametrize(("actor_name", "creator_name", "expected"), MATRIX.values(), ids=MATRIX)
@pytest.mark.parametrize("action", ACTIONS)
def test_who_may_decide(
    request, client, db_session, redis_db, action, actor_name, creator_name, expected
):
    actor = request.getfixturevalue(actor_name)
    creator = request.getfixturevalue(creator_name) if creator_name else None
    row = pending_row(db_session, creator)
    before = [state_of(db_session, row)]
    token = sign_in(client, actor)
    response = post_decision(client, action, token, row.execution_id)
    if expected == 200:
        assert_decided(db_session, redis_db, response, row, action=action, actor=actor)
    else:
        assert_refused(
            db_session,
            redis_db,
            response,
            expected,
            action=action,
            actor=actor,
            rows=[row],
            states_before=before,
            execution_id=row.execution_id,
        )


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        ("approve-any", {"approve": 200, "cancel": 403}),
        ("cancel-any", {"approve": 403, "cancel": 200}),
    ],
)
@pytest.mark.parametrize("action", ACTIONS)
def test_approve_any_and_cancel_any_are_separate_permissions(
    client, db_session, redis_db, bob, action, group, expected
):
    create_group(db_session, f"only-{group}", [f"{group}:purchases"], restricts_defaults=True)
    actor = make_user(db_session, "holder@example.com", groups=(f"only-{group}",))
    row = pending_row(db_session, bob)
    before = [state_of(db_session, row)]
    token = sign_in(client, actor)
    response = post_decision(client, action, token, row.execution_id)
    if expected[action] == 200:
        assert_decided(db_session, redis_db, response, row, action=action, actor=actor)
    else:
        assert_refused(
            db_session,
            redis_db,
            response,
            403,
            action=action,
            actor=actor,
            rows=[row],
            states_before=before,
            execution_id=row.execution_id,
        )


# --- Four eyes ----------------------------------------------------------------------


@pytest.mark.parametrize("creator_name", ["alice", "admin", "purchaser"])
def test_with_four_eyes_the_creator_may_not_approve_even_as_admin(
    request, client, db_session, redis_db, four_eyes, creator_name
):
    creator = request.getfixturevalue(creator_name)
    row = pending_row(db_session, creator)
    make_suppression(db_session, row)
    before = [state_of(db_session, row)]
    token = sign_in(client, creator)
    response = post_decision(client, "approve", token, row.execution_id)
    body = assert_refused(
        db_session,
        redis_db,
        response,
        403,
        action="approve",
        actor=creator,
        rows=[row],
        states_before=before,
        execution_id=row.execution_id,
    )
    assert "REQUIRE_DIFFERENT_APPROVER" in body["error"]


@pytest.mark.parametrize("creator_name", ["alice", "admin"])
def test_with_four_eyes_the_creator_may_still_cancel(
    request, client, db_session, redis_db, four_eyes, creator_name
):
    creator = request.getfixturevalue(creator_name)
    row = pending_row(db_session, creator)
    token = sign_in(client, creator)
    response = post_decision(client, "cancel", token, row.execution_id)
    assert_decided(db_session, redis_db, response, row, action="cancel", actor=creator)


@pytest.mark.parametrize("approver_name", ["purchaser", "admin"])
def test_with_four_eyes_someone_else_with_approve_any_may_approve(
    request, client, db_session, redis_db, four_eyes, alice, approver_name
):
    approver = request.getfixturevalue(approver_name)
    row = pending_row(db_session, alice)
    token = sign_in(client, approver)
    response = post_decision(client, "approve", token, row.execution_id)
    assert_decided(db_session, redis_db, response, row, action="approve", actor=approver)


def test_with_four_eyes_the_creator_of_a_decided_row_still_gets_403_not_409(
    client, db_session, redis_db, four_eyes, alice
):
    row = make_execution(db_session, Status.CANCELLED, created_by=alice)
    before = [state_of(db_session, row)]
    token = sign_in(client, alice)
    response = post_decision(client, "approve", token, row.execution_id)
    body = assert_refused(
        db_session,
        redis_db,
        response,
        403,
        action="approve",
        actor=alice,
        rows=[row],
        states_before=before,
        execution_id=row.execution_id,
    )
    assert "status" not in body


def test_without_four_eyes_the_creator_may_approve(client, db_session, redis_db, alice):
    row = pending_row(db_session, alice)
    token = sign_in(client, alice)
    response = post_decision(client, "approve", token, row.execution_id)
    assert_decided(db_session, redis_db, response, row, action="approve", actor=alice)


# --- Suppressions --------------------------------------------------------------------


def suppression_owners(session) -> list[uuid.UUID]:
    query = select(PurchaseSuppression.execution_id).order_by(PurchaseSuppression.id)
    return list(session.scalars(query))


def test_cancel_deletes_the_rows_suppressions_and_no_others(client, db_session, redis_db, alice):
    row = pending_row(db_session, alice)
    other = pending_row(db_session, alice)
    make_suppression(db_session, row)
    make_suppression(db_session, other)
    token = sign_in(client, alice)
    response = post_decision(client, "cancel", token, row.execution_id)
    assert_decided(db_session, redis_db, response, row, action="cancel", actor=alice)
    assert suppression_owners(db_session) == [other.execution_id]


def test_approve_keeps_the_rows_suppressions(client, db_session, redis_db, alice):
    row = pending_row(db_session, alice)
    make_suppression(db_session, row)
    token = sign_in(client, alice)
    response = post_decision(client, "approve", token, row.execution_id)
    assert_decided(db_session, redis_db, response, row, action="approve", actor=alice)
    assert suppression_owners(db_session) == [row.execution_id]


def test_a_refused_cancel_keeps_the_suppressions(client, db_session, redis_db, alice, bob):
    row = pending_row(db_session, bob)
    make_suppression(db_session, row)
    token = sign_in(client, alice)
    response = post_decision(client, "cancel", token, row.execution_id)
    assert response.status_code == 403
    assert suppression_owners(db_session) == [row.execution_id]


@pytest.mark.parametrize(
    "body",
    ['{"token": "' + "x" * 5000 + '"}', '{"token": "not-a-token"}'],
    ids=["5000-chars", "unknown"],  # a lone surrogate is refused at the door (400)
)
@pytest.mark.parametrize("action", ACTIONS)
def test_a_token_that_opens_nothing_is_403_never_a_500(
    client, db_session, redis_db, alice, action, body
):
    row = pending_row(db_session, alice)
    before = state_of(db_session, row)
    response = client.post(
        f"/api/purchases/{action}/{row.execution_id}",
        data=body,
        content_type="application/json",
    )
    assert response.status_code == 403, response.text
    assert response.json["error"].startswith("this link is not valid")
    assert state_of(db_session, row) == before
