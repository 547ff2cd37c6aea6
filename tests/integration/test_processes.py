"""The product's own commands, run as separate processes the way an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from app.db import unit_of_work, utcnow
from app.domain.statuses import Status
from tests.conftest import create_database, drop_database
from tests.factories import make_execution

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def product_env(settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"FLASK_APP"}}
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        SECRET_KEY="test-secret-key",
        **extra,
    )
    return env


@pytest.fixture
def worker_process(app, settings, committed_db, redis_db) -> Iterator[subprocess.Popen]:
    """`celery -A tasks worker` exactly as the Procfile starts it."""
    process = subprocess.Popen(
        [
            str(BIN / "celery"),
            "-A",
            "tasks",
            "worker",
            "--loglevel=WARNING",
            "--concurrency=1",
            "--pool=solo",
            "-n",
            f"test-{os.getpid()}@%h",
        ],
        cwd=REPO,
        env=product_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    celery_app = app.extensions["celery"]
    deadline = time.monotonic() + 30
    while not celery_app.control.ping(timeout=0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"worker did not start:\n{process.stdout.read()}")
    yield process
    process.terminate()
    process.wait(timeout=30)


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


def test_a_bad_setting_stops_the_cli_and_names_the_variable(settings):
    result = subprocess.run(
        [str(BIN / "flask"), "--app", "app", "db", "current"],
        cwd=REPO,
        env=product_env(settings, RETRY_THRESHOLD="five"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "RETRY_THRESHOLD must be a whole number, got 'five'" in result.stderr


def test_db_upgrade_builds_an_empty_postgres_database(postgres_admin_url, settings, redis_db):
    url = create_database(postgres_admin_url, "ccp_cli")
    env = product_env(settings.with_overrides(database_url=url))
    try:
        upgrade = subprocess.run(
            [str(BIN / "flask"), "--app", "app", "db", "upgrade"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert upgrade.returncode == 0, upgrade.stderr
        create = subprocess.run(
            [
                str(BIN / "flask"),
                "--app",
                "app",
                "users",
                "create",
                "Ops@Example.com",
                "--password-stdin",
                "--group",
                "Administrators",
            ],
            cwd=REPO,
            env=env,
            input="a long password\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert create.returncode == 0, create.stderr
        assert "created user ops@example.com" in create.stdout
    finally:
        drop_database(postgres_admin_url, url)
