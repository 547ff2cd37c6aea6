"""The freeze and the plans over JSON: who may switch them, what each refusal answers
(and that it is audited), and that the rows a switch releases are queued for the
executor once the switch has committed."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.db import utcnow
from app.domain.statuses import Status
from app.models import AuditEvent, PurchaseExecution, PurchaseFreeze, PurchasePlan
from app.task_names import EXECUTE
from tests.e2e.helpers import sign_in
from tests.factories import make_execution, make_plan


def post(client, token, url, body=None):
    return client.post(url, json=body, headers={"X-CSRFToken": token})


def events(session, action):
    session.expire_all()
    return session.scalars(
        select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
    ).all()


def queued_executions(redis_db) -> list[str]:
    """The execution ids of the `purchases.execute` tasks waiting in the broker."""
    found = []
    for raw in redis_db.lrange("purchases", 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] == EXECUTE:
            found.append(message["headers"]["argsrepr"].strip("()[]',\""))
    return found


def test_an_admin_freezes_and_lifts_and_every_viewer_sees_it(
    client, app, db_session, admin, viewer, redis_db
):
    assert client.get("/api/freeze").status_code == 401
    sign_in(client, viewer)
    assert client.get("/api/freeze").json == {
        "frozen": False,
        "reason": None,
        "frozen_by": None,
        "frozen_at": None,
    }
    token = sign_in(client, admin)
    waiting = make_execution(db_session, Status.APPROVED)

    frozen = post(client, token, "/api/freeze", {"reason": "  bad recommendation run  "})

    assert frozen.status_code == 201, frozen.json
    assert frozen.json["frozen"] is True
    assert frozen.json["reason"] == "bad recommendation run"
    assert frozen.json["frozen_by"] == admin.email
    sign_in(client, viewer)
    assert client.get("/api/freeze").json == frozen.json
    [event] = events(db_session, "freeze.on")
    assert (event.actor_email, event.details) == (admin.email, {"reason": "bad recommendation run"})

    token = sign_in(client, admin)
    lifted = post(client, token, "/api/freeze/lift")

    assert lifted.status_code == 200, lifted.json
    assert lifted.json == {"lifted": True, "released": 1}
    assert queued_executions(redis_db) == [str(waiting.execution_id)]
    assert client.get("/api/freeze").json["frozen"] is False
    [event] = events(db_session, "freeze.lifted")
    assert event.details["released"] == 1
    assert db_session.scalars(select(PurchaseFreeze)).one().lifted_by == admin.email


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"reason": "   "}, "a reason is required"),
        (None, "a reason is required"),
        ({}, "a reason is required"),
        ({"reason": "x" * 501}, "longer than 500"),
    ],
)
def test_a_freeze_without_a_usable_reason_is_refused_and_audited(
    client, db_session, admin, body, message
):
    token = sign_in(client, admin)
    response = post(client, token, "/api/freeze", body)
    assert response.status_code == 400
    assert message in response.json["error"]
    assert db_session.scalars(select(PurchaseFreeze)).all() == []
    [event] = events(db_session, "freeze.on_refused")
    assert event.details["status"] == 400 and event.actor_email == admin.email


@pytest.mark.parametrize(
    "raw",
    [
        b'{"reason": "\\ud800"}',
        b'{"reason": 12}',
        b'{"reason": "a\\u0000b"}',
        b'{"reason": "x", "why": "y"}',
        b"[1]",
        b"{",
    ],
)
def test_a_hostile_freeze_body_is_a_400(client, db_session, admin, raw):
    token = sign_in(client, admin)
    response = client.post(
        "/api/freeze",
        data=raw,
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 400, response.json
    assert response.json["error"]
    assert db_session.scalars(select(PurchaseFreeze)).all() == []


def test_only_admins_switch_the_freeze_and_every_refusal_is_audited(
    client, db_session, admin, purchaser
):
    token = sign_in(client, purchaser)
    refused = post(client, token, "/api/freeze", {"reason": "mine"})
    assert refused.status_code == 403
    assert "admin:*" in refused.json["error"]
    assert post(client, token, "/api/freeze/lift").status_code == 403

    token = sign_in(client, admin)
    assert post(client, token, "/api/freeze/lift").status_code == 409  # not frozen
    assert post(client, token, "/api/freeze", {"reason": "one"}).status_code == 201
    again = post(client, token, "/api/freeze", {"reason": "two"})
    assert again.status_code == 409
    assert again.json["error"] == "purchases are already frozen"
    assert client.get("/api/freeze").json["reason"] == "one"

    assert [
        (e.actor_email, e.details["status"]) for e in events(db_session, "freeze.on_refused")
    ] == [
        (purchaser.email, 403),
        (admin.email, 409),
    ]
    assert [
        (e.actor_email, e.details["status"]) for e in events(db_session, "freeze.lift_refused")
    ] == [(purchaser.email, 403), (admin.email, 409)]


def test_a_post_without_the_csrf_header_is_refused(client, db_session, admin):
    sign_in(client, admin)
    response = client.post("/api/freeze", json={"reason": "no token"})
    assert response.status_code == 400 and "CSRF" in response.json["error"]
    assert db_session.scalars(select(PurchaseFreeze)).all() == []


def test_plans_list_their_schedule_and_waiting_rows(client, db_session, viewer):
    plan = make_plan(db_session)
    later = utcnow() + timedelta(hours=3)
    make_execution(db_session, Status.APPROVED, plan_id=plan.id, scheduled_for=later)
    make_execution(
        db_session, Status.PENDING, plan_id=plan.id, scheduled_for=later + timedelta(days=1)
    )
    make_execution(db_session, Status.COMPLETED, plan_id=plan.id)
    idle = PurchasePlan(name="idle", enabled=False)
    db_session.add(idle)
    db_session.flush()

    sign_in(client, viewer)
    items = client.get("/api/plans").json["items"]

    assert [item["name"] for item in items] == ["idle", "ramp"]
    ramp = items[1]
    assert ramp["id"] == str(plan.id)
    assert (ramp["paused"], ramp["current_step"], ramp["total_steps"]) == (False, 2, 4)
    assert ramp["next_scheduled_for"].startswith(later.isoformat()[:19])
    assert (ramp["scheduled_later"], ramp["waiting"]) == (2, 1)
    assert (items[0]["paused"], items[0]["waiting"], items[0]["next_scheduled_for"]) == (
        True,
        0,
        None,
    )


def test_pause_then_resume_a_plan_releases_its_waiting_rows(
    client, db_session, purchaser, redis_db
):
    plan = make_plan(db_session)
    token = sign_in(client, purchaser)

    paused = post(client, token, f"/api/plans/{plan.id}/pause")

    assert paused.status_code == 200, paused.json
    assert paused.json["plan"]["paused"] is True and paused.json["released"] == 0
    assert post(client, token, f"/api/plans/{plan.id}/pause").status_code == 409
    row = make_execution(db_session, Status.APPROVED, plan_id=plan.id)
    assert client.get("/api/plans").json["items"][0]["waiting"] == 1

    resumed = post(client, token, f"/api/plans/{plan.id}/resume")

    assert resumed.status_code == 200, resumed.json
    assert resumed.json["plan"]["paused"] is False and resumed.json["released"] == 1
    assert queued_executions(redis_db) == [str(row.execution_id)]
    assert [e.action for e in events(db_session, "plan.paused")] == ["plan.paused"]
    assert events(db_session, "plan.resumed")[0].details["released"] == 1
    assert events(db_session, "plan.pause_refused")[0].details["status"] == 409


def test_run_now_brings_the_next_step_forward(client, db_session, admin, redis_db):
    plan = make_plan(db_session)
    soon, later = utcnow() + timedelta(days=7), utcnow() + timedelta(days=14)
    step_3 = make_execution(
        db_session, Status.APPROVED, plan_id=plan.id, step_number=3, scheduled_for=soon
    )
    step_3_pending = make_execution(
        db_session, Status.PENDING, plan_id=plan.id, step_number=3, scheduled_for=soon
    )
    step_4 = make_execution(
        db_session, Status.APPROVED, plan_id=plan.id, step_number=4, scheduled_for=later
    )
    token = sign_in(client, admin)

    ran = post(client, token, f"/api/plans/{plan.id}/run-now")

    assert ran.status_code == 200, ran.json
    assert (ran.json["step_number"], ran.json["released"]) == (3, 1)
    assert queued_executions(redis_db) == [str(step_3.execution_id)]
    db_session.expire_all()
    assert db_session.get(PurchaseExecution, step_3_pending.execution_id).scheduled_for <= utcnow()
    assert db_session.get(PurchaseExecution, step_4.execution_id).scheduled_for == later


@pytest.mark.parametrize(
    ("who", "plan_id", "status", "message"),
    [
        ("alice", "known", 403, "approve-any:purchases is required"),
        ("viewer", "known", 403, "approve-any:purchases is required"),
        ("admin", "unknown", 404, "no plan"),
        ("admin", "not-a-uuid", 400, "malformed plan id"),
        ("admin", "%ED%A0%80", 400, "malformed plan id"),
        ("admin", "x" * 5000, 400, "malformed plan id"),
    ],
)
@pytest.mark.parametrize("switch", ["pause", "resume", "run-now"])
def test_plan_switches_refuse_and_audit(
    client, db_session, request, switch, who, plan_id, status, message
):
    user = request.getfixturevalue(who)
    plan = make_plan(db_session)
    target = {"known": str(plan.id), "unknown": "6f1c0000-0000-4000-8000-000000000000"}.get(
        plan_id, plan_id
    )
    token = sign_in(client, user)

    response = post(client, token, f"/api/plans/{target}/{switch}")

    assert response.status_code == status, response.json
    assert message in response.json["error"]
    action = {"pause": "plan.pause_refused", "resume": "plan.resume_refused"}.get(
        switch, "plan.run_now_refused"
    )
    [event] = events(db_session, action)
    assert (event.actor_email, event.details["status"]) == (user.email, status)
    db_session.expire_all()
    assert db_session.get(PurchasePlan, plan.id).enabled is True


def test_run_now_is_refused_while_frozen_or_paused(client, db_session, admin):
    plan = make_plan(db_session)
    make_execution(
        db_session, Status.APPROVED, plan_id=plan.id, scheduled_for=utcnow() + timedelta(days=1)
    )
    token = sign_in(client, admin)
    assert post(client, token, "/api/freeze", {"reason": "audit"}).status_code == 201
    frozen = post(client, token, f"/api/plans/{plan.id}/run-now")
    assert frozen.status_code == 409 and "frozen" in frozen.json["error"]
    assert post(client, token, "/api/freeze/lift").json["released"] == 0
    assert post(client, token, f"/api/plans/{plan.id}/pause").status_code == 200
    paused = post(client, token, f"/api/plans/{plan.id}/run-now")
    assert paused.status_code == 409 and "resume it first" in paused.json["error"]
