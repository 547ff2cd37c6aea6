"""The database goes away while a task runs: the task retries (Celery's retry, the
database's own budget) and there is exactly one outcome, one successor and one email.

- PostgreSQL restarted under a retry (a cluster of the test's own).
- SQLite's file locked (busy) under a retry: the analogue on one host.
- An email task that spent more SMTP attempts than the database's budget still gets
  its database retries: the budgets are separate. (Before, both were Celery's one
  counter: after five SMTP refusals the first database hiccup failed the task, and
  the email was never sent.)
"""

from __future__ import annotations

import uuid

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from app.db import build_engine, db, fresh_read, unit_of_work
from app.models import Notification
from tasks.notifications import SEND_APPROVAL_EMAIL
from tasks.transient import DATABASE_MAX_RETRIES
from tests.factories import (
    make_user,
    owed_approval_email,
)
from tests.integration.faults.conftest import (
    Api,
    lineage,
    lock_out_writers,
    redis_url,
    seed,
    terminate,
)
from tests.support.commands import flask_cli, wait_until
from tests.support.smtp import ScriptedSmtp, free_port

pytestmark = [pytest.mark.worker, pytest.mark.processes]

DATABASE_RETRIED = "TransientDatabaseError"


def database_retries(output: str) -> int:
    """How many times a worker's log says a task was retried for the database."""
    return sum(
        "retry: Retry in" in line and DATABASE_RETRIED in line for line in output.splitlines()
    )


def database_errors(output: str) -> int:
    """How many times a worker's log says a task met a database error (retried or not)."""
    return sum(
        ("retry: Retry in" in line or "raised unexpected" in line)
        and ("OperationalError" in line or DATABASE_RETRIED in line)
        for line in output.splitlines()
    )


def mail_env(server) -> dict[str, str]:
    return {
        "SMTP_HOST": server.host,
        "SMTP_PORT": str(server.port),
        "FROM_EMAIL": "purchases@example.com",
    }


@pytest.mark.backends("postgresql")
def test_postgresql_restarted_under_a_retry_settles_it_once(
    settings, private_postgres, processes, mailbox
):
    url = private_postgres.create_database("ccp_restart")
    target = settings.with_overrides(database_url=url, redis_url=redis_url(7))
    migrated = flask_cli(target, "db", "upgrade")
    assert migrated.returncode == 0, migrated.stderr
    engine = build_engine(url)
    redis_flush(7)
    try:
        email, (failed,) = seed(engine, 1)
        _, web = processes.web(target, "web", **mail_env(mailbox))
        api = Api(web).sign_in(email)
        status_url = api.retry(failed)  # queued; no worker yet

        with lock_out_writers(url) as waiting:
            worker = processes.worker(target, "restart", **mail_env(mailbox))
            wait_until(waiting, timeout=30, what="the retry to wait on the lock")
            private_postgres.restart()  # cuts the worker's connection mid-task

        outcome = api.settled(status_url)
        assert outcome["state"] == "succeeded", outcome
        wait_until(lambda: mailbox.messages, what="the approval email")
        assert database_retries(worker.output()) >= 1, worker.output()
        assert lineage(engine, [failed]) == (2, 1)
        assert len(mailbox.messages) == 1
    finally:
        engine.dispose()
        redis_flush(7)


@pytest.mark.backends("sqlite")
def test_sqlite_busy_under_a_retry_settles_it_once(
    settings, committed_db, redis_db, processes, mailbox
):
    engine = db.engine  # the app's: a second engine on the file would break its locks
    email, (failed,) = seed(engine, 1)
    _, web = processes.web(settings, "web", **mail_env(mailbox))
    api = Api(web).sign_in(email)
    status_url = api.retry(failed)

    # Held past SQLite's busy timeout (10 s): the worker's write fails, and is retried.
    with lock_out_writers(settings.database_url):
        worker = processes.worker(settings, "busy", **mail_env(mailbox))
        wait_until(
            lambda: database_retries(worker.output()),
            timeout=30,
            what="the worker to retry on the busy database",
        )

    outcome = api.settled(status_url)
    assert outcome["state"] == "succeeded", outcome
    wait_until(lambda: mailbox.messages, what="the approval email")
    assert lineage(engine, [failed]) == (2, 1)
    assert len(mailbox.messages) == 1


class RefuseFirst(ScriptedSmtp):
    """Refuses (451, transient) the first `count` recipients, then takes every message."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.left = count

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.left > 0:
            self.left -= 1
            return "451 4.3.0 try again later"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


def test_an_email_past_the_database_budget_in_smtp_attempts_still_retries_the_database(
    app, settings, committed_db, redis_db, processes, backend
):
    """Five SMTP refusals, then the database fails the sixth attempt's claim: the task
    retries the database and the email goes out once. Before the budgets were separate,
    the task failed there (its Celery counter already said 5) and the email stayed
    queued: no email within the test's minute."""
    with unit_of_work() as session:
        row = owed_approval_email(session, make_user(session))
    handler = RefuseFirst(DATABASE_MAX_RETRIES)
    smtp = Controller(handler, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        worker = processes.worker(
            settings,
            "budget",
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(smtp.port),
            FROM_EMAIL="purchases@example.com",
            EMAIL_RETRY_BASE_SECONDS="0.2",
            EMAIL_MAX_RETRIES="8",
        )
        app.extensions["celery"].send_task(SEND_APPROVAL_EMAIL, args=[str(row.execution_id)])
        wait_until(
            lambda: (
                notification(row.execution_id).attempts == DATABASE_MAX_RETRIES
                and notification(row.execution_id).state == "queued"
            ),
            timeout=30,
            what=f"{DATABASE_MAX_RETRIES} refused attempts",
        )
        # The next attempt is 0.2 * 2**4 = 3.2 s away: the database fails its claim.
        with lock_out_writers(settings.database_url, table="notifications") as waiting:
            if backend == "postgresql":
                terminate(settings.database_url, wait_until(waiting, what="the claim to wait"))
            wait_until(
                lambda: database_errors(worker.output()),
                timeout=30,
                what="the claim to meet the database error",
            )
        sent = wait_until(
            lambda: (
                (found := notification(row.execution_id)).state != "queued"
                and found.state != "sending"
                and found
            ),
            timeout=30,
            what="the email to settle",
        )
        assert sent.state == "sent", (sent.error, worker.output())
        assert database_retries(worker.output()) >= 1, worker.output()
        assert sent.attempts == DATABASE_MAX_RETRIES + 1
        assert len(handler.messages) == 1
    finally:
        smtp.stop()


def notification(execution_id: uuid.UUID) -> Notification:
    with fresh_read() as session:
        return session.scalars(
            select(Notification)
            .where(Notification.execution_id == execution_id)
            .execution_options(populate_existing=True)
        ).one()


def redis_flush(db: int) -> None:
    import redis

    client = redis.Redis.from_url(redis_url(db))
    client.flushdb()
    client.close()
