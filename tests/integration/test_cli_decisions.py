"""`flask executions approve|cancel ID --as EMAIL` as processes (docs/operations.md,
"Command line").

The same checks as the API: exit 0 with the new status on standard output, exit 1 with
the refusal on standard error and nothing changed.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.db import fresh_read, unit_of_work
from app.domain.statuses import Status
from app.models import AuditEvent, PurchaseExecution
from app.task_names import EXECUTE as EXECUTE_TASK
from tests.factories import make_execution, make_user, recommendation
from tests.support.commands import flask_cli

# Every test runs `flask --app app ...` as a process of its own.
pytestmark = pytest.mark.processes


def pending(session, creator, status: Status = Status.PENDING) -> PurchaseExecution:
    return make_execution(session, status, created_by=creator, recommendations=[recommendation()])


def current(row: PurchaseExecution) -> PurchaseExecution:
    with fresh_read() as session:
        found = session.get(PurchaseExecution, row.execution_id, populate_existing=True)
        assert found is not None
        return found


def audit_actions(execution_id=None) -> list[str]:
    with fresh_read() as session:
        query = select(AuditEvent.action).order_by(AuditEvent.id)
        if execution_id is not None:
            query = query.where(AuditEvent.execution_id == execution_id)
        return list(session.scalars(query))


def queued_tasks(redis_db) -> list[tuple[str, str]]:
    messages = [json.loads(raw) for raw in redis_db.lrange("purchases", 0, -1)]
    return [(m["headers"]["task"], m["headers"]["argsrepr"]) for m in messages]


def test_approve_prints_the_new_status_and_queues_the_purchase(settings, committed_db, redis_db):
    with unit_of_work() as session:
        alice = make_user(session)
        row = pending(session, alice)
    result = flask_cli(
        settings, "executions", "approve", str(row.execution_id), "--as", alice.email
    )
    assert result.returncode == 0, result.stderr
    assert f"{row.execution_id} is now approved (by {alice.email})" in result.stdout
    assert "queued for purchase" in result.stdout
    approved = current(row)
    assert (approved.status, approved.approved_by, approved.approved_by_user_id) == (
        Status.APPROVED,
        alice.email,
        alice.id,
    )
    assert audit_actions(row.execution_id) == ["execution.approved"]
    assert queued_tasks(redis_db) == [(EXECUTE_TASK, repr([str(row.execution_id)]))]


def test_cancel_prints_the_new_status_and_queues_nothing(settings, committed_db, redis_db):
    with unit_of_work() as session:
        alice = make_user(session)
        row = pending(session, alice)
    result = flask_cli(settings, "executions", "cancel", str(row.execution_id), "--as", alice.email)
    assert result.returncode == 0, result.stderr
    assert f"{row.execution_id} is now cancelled (by {alice.email})" in result.stdout
    assert "queued for purchase" not in result.stdout
    cancelled = current(row)
    assert (cancelled.status, cancelled.cancelled_by) == (Status.CANCELLED, alice.email)
    assert audit_actions(row.execution_id) == ["execution.cancelled"]
    assert queued_tasks(redis_db) == []


@pytest.mark.parametrize("action", ["approve", "cancel"])
@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("someone-elses-row", "not allowed to {action} this execution"),
        ("already-approved", "only pending executions can be"),
    ],
    ids=["someone-elses-row", "already-approved"],
)
def test_a_refusal_exits_1_with_the_message_on_stderr_and_changes_nothing(
    settings, committed_db, redis_db, action, case, expected
):
    with unit_of_work() as session:
        alice, bob = make_user(session), make_user(session)
        if case == "someone-elses-row":
            row, actor = pending(session, bob), alice
        else:
            row, actor = pending(session, alice, Status.APPROVED), alice
    result = flask_cli(settings, "executions", action, str(row.execution_id), "--as", actor.email)
    assert result.returncode == 1
    assert expected.format(action=action) in result.stderr
    assert result.stdout == ""
    if case == "already-approved":
        assert "status: approved" in result.stderr  # the refusal's details, one per line
    unchanged = current(row)
    assert (unchanged.status, unchanged.approved_by, unchanged.cancelled_by) == (
        row.status,
        None,
        None,
    )
    assert audit_actions(row.execution_id) == [f"execution.{action}_refused"]
    assert queued_tasks(redis_db) == []


def test_four_eyes_from_the_environment(settings, committed_db, redis_db):
    with unit_of_work() as session:
        alice = make_user(session)
        row = pending(session, alice)
    args = ("executions", "approve", str(row.execution_id), "--as", alice.email)
    refused = flask_cli(settings, *args, REQUIRE_DIFFERENT_APPROVER="true")
    assert refused.returncode == 1
    assert "REQUIRE_DIFFERENT_APPROVER" in refused.stderr
    assert current(row).status == Status.PENDING


def test_unknown_or_inactive_user_unknown_and_malformed_ids_exit_1(
    settings, committed_db, redis_db
):
    with unit_of_work() as session:
        alice = make_user(session)
        gone = make_user(session)
        gone.is_active = False
        row = pending(session, alice)
    execution_id = str(row.execution_id)
    for email in ("nobody@example.com", gone.email):
        result = flask_cli(settings, "executions", "approve", execution_id, "--as", email)
        assert result.returncode == 1
        assert f"no active user with email {email}" in result.stderr
    unknown = "6f1c0000-0000-4000-8000-000000000000"
    result = flask_cli(settings, "executions", "cancel", unknown, "--as", alice.email)
    assert result.returncode == 1 and f"no execution {unknown}" in result.stderr
    result = flask_cli(settings, "executions", "cancel", "not-a-uuid", "--as", alice.email)
    assert result.returncode == 1 and "malformed execution id" in result.stderr
    missing_as = flask_cli(settings, "executions", "approve", execution_id)
    assert missing_as.returncode == 2 and "--as" in missing_as.stderr
    assert current(row).status == Status.PENDING
    assert audit_actions(row.execution_id) == []
