"""`flask executions retry|list` as processes, with a real worker settling the requests."""

from __future__ import annotations

import pytest

from app.db import unit_of_work
from app.domain.statuses import Status
from tests.factories import make_execution, make_user, recommendation
from tests.support.commands import flask_cli

# Every test runs `flask --app app ...` as a process of its own.
pytestmark = pytest.mark.processes


def failed(session, creator, **fields):
    values = {"error": "capacity", "recommendations": [recommendation()]}
    return make_execution(session, Status.FAILED, created_by=creator, **(values | fields))


@pytest.mark.worker
def test_retry_waits_for_the_worker_and_prints_the_successor(
    settings, committed_db, celery_worker, mailbox
):
    with unit_of_work() as session:
        alice = make_user(session)
        row = failed(session, alice, retry_attempt_n=2)
    result = flask_cli(settings, "executions", "retry", str(row.execution_id), "--as", alice.email)
    assert result.returncode == 0, result.stderr
    assert "queued" in result.stdout
    assert "succeeded: new execution " in result.stdout
    assert "(attempt 3), pending approval" in result.stdout

    listing = flask_cli(settings, "executions", "list")
    assert listing.returncode == 0, listing.stderr
    assert "retried-by=" in listing.stdout and f"retry-of={row.execution_id}" in listing.stdout


@pytest.mark.worker
def test_force_overrides_the_threshold(settings, committed_db, celery_worker, mailbox):
    with unit_of_work() as session:
        alice = make_user(session)
        row = failed(session, alice, retry_attempt_n=5)
    refused = flask_cli(settings, "executions", "retry", str(row.execution_id), "--as", alice.email)
    assert refused.returncode == 1
    assert "retry_attempt_n: 5" in refused.stderr and "threshold: 5" in refused.stderr

    forced = flask_cli(
        settings, "executions", "retry", str(row.execution_id), "--as", alice.email, "--force"
    )
    assert forced.returncode == 0, forced.stderr
    assert "(attempt 6)" in forced.stdout


@pytest.mark.parametrize(
    ("fields", "as_owner", "expected"),
    [
        ({"error": "smtp: from_email NOT CONFIGURED"}, True, "ops_hint: Set FROM_EMAIL"),
        ({}, False, "not allowed to retry this execution"),
        ({"status": Status.COMPLETED}, True, "only failed or partially completed executions"),
    ],
)
def test_refusals_exit_1_with_their_details(
    settings, committed_db, redis_db, fields, as_owner, expected
):
    with unit_of_work() as session:
        alice, bob = make_user(session), make_user(session)
        values = dict(fields)  # the same parameters serve both backends: never mutate them
        status = values.pop("status", Status.FAILED)
        row = make_execution(
            session, status, created_by=alice, recommendations=[recommendation()], **values
        )
    email = alice.email if as_owner else bob.email
    result = flask_cli(settings, "executions", "retry", str(row.execution_id), "--as", email)
    assert result.returncode == 1
    assert expected in result.stderr
    assert "queued" not in result.stdout


def test_unknown_user_and_malformed_id(settings, committed_db, redis_db):
    with unit_of_work() as session:
        alice = make_user(session)
        row = failed(session, alice)
    nobody = flask_cli(
        settings, "executions", "retry", str(row.execution_id), "--as", "nobody@example.com"
    )
    assert nobody.returncode == 1 and "no active user" in nobody.stderr
    malformed = flask_cli(settings, "executions", "retry", "not-a-uuid", "--as", alice.email)
    assert malformed.returncode == 1 and "malformed execution id" in malformed.stderr


def test_without_a_worker_the_command_says_so_and_exits_3(settings, committed_db, redis_db):
    with unit_of_work() as session:
        alice = make_user(session)
        row = failed(session, alice)
    result = flask_cli(
        settings, "executions", "retry", str(row.execution_id), "--as", alice.email, "--wait", "0.5"
    )
    assert result.returncode == 3
    assert "still queued" in result.stderr and "is a worker running" in result.stderr


def test_list_filters_by_status_and_shows_hints(settings, committed_db):
    with unit_of_work() as session:
        alice = make_user(session)
        hinted = failed(session, alice, error="IAM denied: iam:PurchaseReservedInstances")
        pending = make_execution(session, Status.PENDING, created_by=alice)
    result = flask_cli(settings, "executions", "list", "--status", "failed")
    assert result.returncode == 0, result.stderr
    assert str(hinted.execution_id) in result.stdout
    assert "hint='Grant the purchasing role the missing IAM permission" in result.stdout
    assert str(pending.execution_id) not in result.stdout

    bogus = flask_cli(settings, "executions", "list", "--status", "bogus")
    assert bogus.returncode == 2


@pytest.mark.worker
def test_several_ids_are_one_bulk_retry_with_a_line_per_row(
    settings, committed_db, celery_worker, mailbox
):
    with unit_of_work() as session:
        alice = make_user(session)
        first, second = failed(session, alice), failed(session, alice)
        persistent = failed(session, alice, error="IAM denied: iam:PassRole")
    result = flask_cli(
        settings,
        "executions",
        "retry",
        str(first.execution_id),
        "-",
        "--as",
        alice.email,
        stdin=f"{second.execution_id}\n  {persistent.execution_id}\nnot-an-id\n",
    )
    assert result.returncode == 1, result.stderr
    assert "retry batch " in result.stdout and "queued: 4 executions" in result.stdout
    for row in (first, second):
        assert f"{row.execution_id}: succeeded: new execution " in result.stdout
    assert f"{persistent.execution_id}: rejected (409): this failure will recur" in result.stdout
    assert "ops_hint: Grant the purchasing role" in result.stdout
    assert "not-an-id: rejected (400): malformed execution id" in result.stdout
    assert "2 succeeded, 2 rejected, 0 failed, 0 still queued" in result.stdout


@pytest.mark.worker
def test_a_bulk_retry_of_retryable_rows_exits_0(settings, committed_db, celery_worker, mailbox):
    with unit_of_work() as session:
        alice = make_user(session)
        ids = [str(failed(session, alice).execution_id) for _ in range(3)]
    result = flask_cli(
        settings, "executions", "retry", "-", "--as", alice.email, stdin=" ".join(ids)
    )
    assert result.returncode == 0, result.stderr
    assert "3 succeeded, 0 rejected, 0 failed" in result.stdout


def test_a_bulk_retry_of_too_many_ids_is_refused_whole(settings, committed_db):
    with unit_of_work() as session:
        alice = make_user(session)
    ids = "\n".join(f"00000000-0000-4000-8000-{n:012d}" for n in range(10_001))
    result = flask_cli(settings, "executions", "retry", "-", "--as", alice.email, stdin=ids)
    assert result.returncode == 1
    assert "at most 10,000 execution ids per request; got 10,001" in result.stderr
