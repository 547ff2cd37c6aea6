"""A worker killed with SIGKILL mid-task: its work is settled, once, within
`RECOVERY_WITHIN` (30 s) of another worker being up, through leases and the sweep,
never by waiting out Redis' visibility timeout.

Each test runs beat (the sweep every 5 s) from the start, lets a solo worker take the
work, holds it at a chosen point, kills it with SIGKILL, then starts a fresh worker and
times how long until the work is settled.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from sqlalchemy import func, select, text

from app import background, task_names
from app.db import db, unit_of_work
from app.domain.staleness import RECOVERY_WITHIN
from app.domain.statuses import Status
from app.models import PurchaseExecution, PurchaseSuppression
from app.services import retry
from app.services.identity import principal_for
from tests.factories import (
    make_account,
    make_execution,
    make_user,
    owed_approval_email,
    recommendation,
)
from tests.integration.tasks.flows import execution, failed_row, kill, ready
from tests.support.commands import wait_until
from tests.support.retries import request_state

pytestmark = pytest.mark.worker

# The three writes of a retry, and the lock that holds the worker just before each.
WRITES = {
    "successor": "LOCK TABLE purchase_executions IN SHARE MODE",
    "link": "SELECT 1 FROM purchase_executions WHERE execution_id = :row FOR UPDATE",
    "suppressions": "LOCK TABLE purchase_suppressions IN SHARE MODE",
}


def _waiting_on_a_lock() -> bool:
    with db.engine.connect() as connection:
        waiting = connection.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return waiting.scalar() > 0


@contextmanager
def held_at(backend: str, write: str, row_id) -> Iterator[None]:
    """Hold whichever worker runs the retry just before `write` (PostgreSQL), or before
    its first write (SQLite, whose writers wait for one lock)."""
    with db.engine.connect() as blocker:
        blocker.begin()
        if backend == "sqlite":
            blocker.execute(text("UPDATE users SET email = email"))
        else:
            blocker.execute(text(WRITES[write]), {"row": row_id})
        try:
            yield
        finally:
            blocker.rollback()


def until_held(backend: str) -> None:
    if backend == "sqlite":
        time.sleep(1.5)
    else:
        wait_until(_waiting_on_a_lock, what="the worker to wait on the lock")


def emails_naming(mailbox, execution_id) -> int:
    """How many messages name the execution (in their subject or decoded body)."""
    found = 0
    for envelope in mailbox.messages:
        message = message_from_bytes(envelope.original_content, policy=default_policy)
        body = message.get_body(("plain",)).get_content()
        found += str(execution_id) in f"{message['Subject']}\n{body}"
    return found


@pytest.mark.parametrize("write", list(WRITES))
def test_a_retry_killed_at_each_write_is_settled_once_soon_after_a_fresh_worker(
    app, backend, write, beat, workers, mailbox, record_property
):
    if backend == "sqlite" and write != "successor":
        pytest.skip("SQLite's writers wait for one lock: the worker is held before any write")
    with unit_of_work() as session:
        alice = make_user(session)
        row = failed_row(session, alice)
    request = retry.ask_for_retry(principal_for(alice), str(row.execution_id), force=False)
    with held_at(backend, write, row.execution_id):
        doomed = workers("doomed")
        until_held(backend)
        kill(doomed)
    with unit_of_work() as session:  # nothing of the three writes was committed
        assert request_state(session, request.id).state == "queued"
        assert session.scalar(select(func.count()).select_from(PurchaseExecution)) == 1
        assert session.scalar(select(func.count()).select_from(PurchaseSuppression)) == 0

    since = time.monotonic()  # the fresh worker starts
    ready(app, workers("fresh"), "fresh")

    def outcome():
        with unit_of_work() as session:
            found = request_state(session, request.id)
        return found if found.state != "queued" else None

    settled = wait_until(outcome, timeout=RECOVERY_WITHIN.total_seconds(), what="the retry")
    record_property("recovered_in_seconds", round(time.monotonic() - since, 1))
    assert settled.state == "succeeded"
    wait_until(lambda: emails_naming(mailbox, settled.successor_execution_id), what="the email")
    time.sleep(1)
    assert emails_naming(mailbox, settled.successor_execution_id) == 1
    with unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(PurchaseExecution)) == 2


def test_a_bulk_chunk_killed_mid_way_is_settled_once_soon_after_a_fresh_worker(
    app, backend, beat, workers, mailbox, record_property
):
    with unit_of_work() as session:
        alice = make_user(session)
        rows = [failed_row(session, alice) for _ in range(6)]
    batch = retry.ask_for_bulk_retry(
        principal_for(alice), {"execution_ids": [str(row.execution_id) for row in rows]}
    )
    with held_at(backend, "link", rows[-1].execution_id):
        doomed = workers("doomed")
        until_held(backend)
        kill(doomed)
    with unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(PurchaseExecution)) == 6

    since = time.monotonic()  # the fresh worker starts
    ready(app, workers("fresh"), "fresh")

    def done():
        with unit_of_work() as session:
            successors = session.scalars(
                select(PurchaseExecution.retry_execution_id).where(
                    PurchaseExecution.retry_execution_id.is_not(None)
                )
            ).all()
        return successors if len(successors) == 6 else None

    successors = wait_until(done, timeout=RECOVERY_WITHIN.total_seconds(), what="the chunk")
    record_property("recovered_in_seconds", round(time.monotonic() - since, 1))
    wait_until(lambda: all(emails_naming(mailbox, id_) for id_ in successors), what="six emails")
    time.sleep(1)
    assert [emails_naming(mailbox, id_) for id_ in successors] == [1] * 6
    with unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(PurchaseExecution)) == 12
    assert batch.total == 6


def test_an_execution_killed_mid_purchase_is_failed_soon_after_a_fresh_worker(
    app, beat, workers, mailbox, record_property
):
    """Its lease lapses and the sweep fails the row (a retry buys only the rest)."""
    with unit_of_work() as session:
        alice = make_user(session)
        row = make_execution(
            session,
            Status.APPROVED,
            created_by=alice,
            cloud_account_id=make_account(session).id,
            recommendations=[
                recommendation(),
                recommendation(resource_type="c5.xlarge", simulate_delay_seconds=60),
            ],
        )
    doomed = workers("doomed")
    background.enqueue(task_names.EXECUTE, [str(row.execution_id)])
    wait_until(lambda: execution(row.execution_id).lease_owner is not None, what="the run to start")
    time.sleep(1)  # item 0 bought, the provider busy with item 1
    kill(doomed)
    assert execution(row.execution_id).status == Status.RUNNING

    since = time.monotonic()  # the fresh worker starts
    ready(app, workers("fresh"), "fresh")
    failed = wait_until(
        lambda: (found := execution(row.execution_id)).status == Status.FAILED and found,
        timeout=RECOVERY_WITHIN.total_seconds(),
        what="the run to be failed",
    )
    record_property("recovered_in_seconds", round(time.monotonic() - since, 1))
    assert failed.error == "interrupted: the worker running it stopped"
    wait_until(lambda: mailbox.messages, what="the outcome email")
    time.sleep(1)
    assert len(mailbox.messages) == 1
    assert mailbox.messages[0].rcpt_tos == [alice.email]


def test_an_email_send_killed_mid_way_is_sent_once_soon_after_a_fresh_worker(
    app, beat, workers, mailbox, record_property
):
    """The doomed worker's SMTP server takes the connection and never answers."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True).start()
    with unit_of_work() as session:
        row = owed_approval_email(session, make_user(session))
    try:
        doomed = workers("doomed", SMTP_PORT=str(silent.getsockname()[1]))
        background.enqueue(task_names.SEND_APPROVAL_EMAIL, [str(row.execution_id)])
        wait_until(lambda: accepted, what="the worker to connect to the silent server")
        kill(doomed)
    finally:
        silent.close()

    since = time.monotonic()  # the fresh worker starts
    ready(app, workers("fresh"), "fresh")
    wait_until(
        lambda: emails_naming(mailbox, row.execution_id),
        timeout=RECOVERY_WITHIN.total_seconds(),
        what="the email",
    )
    record_property("recovered_in_seconds", round(time.monotonic() - since, 1))
    time.sleep(1)
    assert emails_naming(mailbox, row.execution_id) == 1
    assert execution(row.execution_id).notification_sent_at is not None
