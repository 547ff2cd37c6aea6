"""`flask freeze on|off|status` and `flask plans list|pause|resume|run-now` as processes:
the checks of the API (admins freeze; admins and approve-any holders switch plans),
exit 1 with the refusal on standard error, each refusal audited, and the rows a switch
releases queued for the worker."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.db import fresh_read, unit_of_work, utcnow
from app.domain.statuses import Status
from app.models import AuditEvent, PurchaseFreeze, PurchasePlan
from app.task_names import EXECUTE
from tests.factories import make_execution, make_plan, make_user
from tests.support.commands import flask_cli

pytestmark = pytest.mark.processes


def audit(action: str) -> list[tuple[str, dict]]:
    with fresh_read() as session:
        rows = session.execute(
            select(AuditEvent.actor_email, AuditEvent.details)
            .where(AuditEvent.action == action)
            .order_by(AuditEvent.id)
        )
        return [(email, details) for email, details in rows]


def queued_executions(redis_db) -> list[str]:
    messages = [json.loads(raw) for raw in redis_db.lrange("purchases", 0, -1)]
    return [
        m["headers"]["argsrepr"].strip("()[]',\"")
        for m in messages
        if m["headers"]["task"] == EXECUTE
    ]


@pytest.fixture
def people(committed_db):
    with unit_of_work() as session:
        admin = make_user(session, "root@example.com", ("Administrators",))
        buyer = make_user(session, "buyer@example.com", ("Purchasers",))
        plain = make_user(session, "plain@example.com")
        return admin.email, buyer.email, plain.email


def test_freeze_on_status_and_off(settings, people, redis_db):
    admin = people[0]
    assert flask_cli(settings, "freeze", "status").stdout.strip() == "purchases are not frozen"

    on = flask_cli(settings, "freeze", "on", "--reason", "bad run", "--as", admin)
    assert on.returncode == 0, on.stderr
    assert "purchases frozen by root@example.com" in on.stdout

    status = flask_cli(settings, "freeze", "status")
    assert status.returncode == 2
    assert "FROZEN" in status.stdout and "bad run" in status.stdout and admin in status.stdout

    with unit_of_work() as session:
        row = make_execution(session, Status.APPROVED)
    off = flask_cli(settings, "freeze", "off", "--as", admin)
    assert off.returncode == 0, off.stderr
    assert "1 approved executions queued" in off.stdout
    assert queued_executions(redis_db) == [str(row.execution_id)]
    assert [email for email, _ in audit("freeze.on")] == [admin]
    assert audit("freeze.lifted")[0][1]["released"] == 1


@pytest.mark.parametrize(
    ("args", "who", "message"),
    [
        (("on", "--reason", "mine"), "buyer", "admin:* is required"),
        (("on", "--reason", "   "), "admin", "a reason is required"),
        (("on", "--reason", "x" * 600), "admin", "longer than 500"),
        (("off",), "admin", "purchases are not frozen"),
        (("off",), "plain", "admin:* is required"),
    ],
)
def test_freeze_refusals_exit_1_and_are_audited(settings, people, args, who, message):
    email = dict(zip(("admin", "buyer", "plain"), people, strict=True))[who]
    result = flask_cli(settings, "freeze", *args, "--as", email)
    assert result.returncode == 1
    assert message in result.stderr
    action = "freeze.on_refused" if args[0] == "on" else "freeze.lift_refused"
    assert [actor for actor, _ in audit(action)] == [email]
    with fresh_read() as session:
        assert session.scalars(select(PurchaseFreeze)).all() == []


def test_a_second_freeze_is_refused(settings, people):
    admin = people[0]
    assert flask_cli(settings, "freeze", "on", "--reason", "one", "--as", admin).returncode == 0
    again = flask_cli(settings, "freeze", "on", "--reason", "two", "--as", admin)
    assert again.returncode == 1 and "already frozen" in again.stderr
    assert audit("freeze.on_refused")[0][1]["status"] == 409


def test_plans_by_name_or_id_pause_resume_and_run_now(settings, people, redis_db):
    _, buyer, _ = people
    with unit_of_work() as session:
        plan = make_plan(session)
        plan_id = plan.id
        due = make_execution(session, Status.APPROVED, plan_id=plan.id)
        later = make_execution(
            session,
            Status.APPROVED,
            plan_id=plan.id,
            step_number=3,
            scheduled_for=utcnow() + timedelta(days=7),
        )

    listed = flask_cli(settings, "plans", "list")
    assert listed.returncode == 0, listed.stderr
    assert f"{plan_id}  ramp  active  step 2/4" in listed.stdout

    paused = flask_cli(settings, "plans", "pause", "ramp", "--as", buyer)
    assert paused.returncode == 0, paused.stderr
    assert f"plan ramp ({plan_id}) paused by {buyer}" in paused.stdout
    assert "paused" in flask_cli(settings, "plans", "list").stdout

    resumed = flask_cli(settings, "plans", "resume", str(plan_id), "--as", buyer)
    assert resumed.returncode == 0, resumed.stderr
    assert "1 approved executions queued" in resumed.stdout
    assert queued_executions(redis_db) == [str(due.execution_id)]

    ran = flask_cli(settings, "plans", "run-now", "ramp", "--as", buyer)
    assert ran.returncode == 0, ran.stderr
    assert "step 3 brought forward" in ran.stdout
    assert sorted(queued_executions(redis_db)) == sorted(
        [str(due.execution_id), str(later.execution_id)]
    )
    assert [len(audit(action)) for action in ("plan.paused", "plan.resumed", "plan.run_now")] == [
        1,
        1,
        1,
    ]


@pytest.mark.parametrize(
    ("plan", "who", "message"),
    [
        ("nowhere", "buyer", "no plan named 'nowhere'"),
        ("6f1c0000-0000-4000-8000-000000000000", "buyer", "no plan 6f1c0000"),
        ("ramp", "plain", "approve-any:purchases is required"),
        ("twin", "buyer", "several plans are named 'twin'"),
    ],
)
def test_plan_refusals_exit_1_and_are_audited(settings, people, plan, who, message):
    email = dict(zip(("admin", "buyer", "plain"), people, strict=True))[who]
    with unit_of_work() as session:
        make_plan(session)
        session.add_all([PurchasePlan(name="twin"), PurchasePlan(name="twin")])

    result = flask_cli(settings, "plans", "pause", plan, "--as", email)

    assert result.returncode == 1
    assert message in result.stderr
    assert [actor for actor, _ in audit("plan.pause_refused")] == [email]
    with fresh_read() as session:
        assert all(session.scalars(select(PurchasePlan.enabled)))


def test_an_unknown_user_is_refused(settings, people):
    result = flask_cli(settings, "freeze", "on", "--reason", "x", "--as", "ghost@example.com")
    assert result.returncode == 1 and "no active user" in result.stderr
