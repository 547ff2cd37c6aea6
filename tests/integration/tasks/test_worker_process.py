"""The product's own commands, run as separate processes the way an operator runs them."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from app.db import unit_of_work, utcnow
from app.domain.statuses import Status
from tests.factories import make_execution
from tests.support.commands import flask_cli, start_worker, stop_worker


@pytest.fixture
def worker_process(app, settings, committed_db, redis_db) -> Iterator[subprocess.Popen]:
    """`celery -A tasks worker` exactly as the Procfile starts it."""
    process = start_worker(settings, "test")
    celery_app = app.extensions["celery"]
    deadline = time.monotonic() + 30
    while not celery_app.control.ping(timeout=0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"worker did not start:\n{stop_worker(process)}")
    yield process
    stop_worker(process)


@pytest.mark.worker
def test_the_worker_command_consumes_every_queue_and_runs_tasks(app, worker_process, settings):
    celery_app = app.extensions["celery"]
    queues = celery_app.control.inspect(timeout=5).active_queues()
    assert queues, "no worker answered"
    consumed = {queue["name"] for worker in queues.values() for queue in worker}
    assert consumed == {"purchases", "notifications", "maintenance"}

    with unit_of_work() as session:
        old = make_execution(
            session,
            Status.PENDING,
            created_at=utcnow() - timedelta(hours=settings.approval_token_ttl_hours + 1),
        )
    result = celery_app.send_task("maintenance.expire_pending_executions")
    assert result.get(timeout=30) == [str(old.execution_id)]


@pytest.mark.processes
def test_a_bad_setting_stops_the_cli_and_names_the_variable(settings):
    result = flask_cli(settings, "db", "current", RETRY_THRESHOLD="five")
    assert result.returncode != 0
    assert "RETRY_THRESHOLD must be a whole number, got 'five'" in result.stderr


@pytest.mark.processes
def test_db_upgrade_builds_an_empty_database(fresh_database, settings, redis_db):
    target = settings.with_overrides(database_url=fresh_database("ccp_cli"))
    upgrade = flask_cli(target, "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    create = flask_cli(
        target,
        "users",
        "create",
        "Ops@Example.com",
        "--password-stdin",
        "--group",
        "Administrators",
        stdin="a long password\n",
    )
    assert create.returncode == 0, create.stderr
    assert "created user ops@example.com" in create.stdout


@pytest.mark.processes
def test_a_bad_setting_stops_the_worker_and_names_the_variable(settings):
    process = start_worker(settings, "misconfigured", RETRY_THRESHOLD="five")
    output = process.communicate(timeout=60)[0]
    assert process.returncode != 0
    assert "RETRY_THRESHOLD must be a whole number, got 'five'" in output
