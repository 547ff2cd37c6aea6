"""Beat's jobs on crafted rows, each run twice at once: every change happens once
(docs/operations.md, "Background work"). Real commits, one thread per run, on each
database."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.db import fresh_read, unit_of_work, utcnow
from app.domain.approvals import ApprovalPolicy
from app.domain.staleness import UNSTARTED_AFTER
from app.domain.statuses import Status
from app.models import AuditEvent, PurchaseExecution, PurchaseSuppression
from app.services import executor, maintenance
from tests.factories import make_execution, make_suppression, recommendation


def twice_at_once(app: Flask, job: Callable[[Any], Any]) -> list[Any]:
    """Run `job(session)` in two threads, each in its own unit of work, released at
    the same moment; their results."""
    barrier = threading.Barrier(2)
    results: list[Any] = [None, None]
    errors: list[BaseException] = []

    def run(slot: int) -> None:
        with app.app_context():
            barrier.wait()
            try:
                with unit_of_work() as session:
                    results[slot] = job(session)
            except BaseException as exc:  # reported below, with the test's own failure
                errors.append(exc)

    threads = [threading.Thread(target=run, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    return results


def events(action: str) -> int:
    with fresh_read() as session:
        return session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
        )


def row_status(execution_id) -> str:
    with fresh_read() as session:
        return session.get(PurchaseExecution, execution_id, populate_existing=True).status


def test_expiring_twice_at_once_expires_once_and_frees_the_suppressions(app, committed_db):
    ttl = timedelta(hours=168)
    with unit_of_work() as session:
        old = make_execution(
            session, Status.PENDING, created_at=utcnow() - ttl - timedelta(hours=1)
        )
        young = make_execution(session, Status.PENDING)
        make_suppression(session, old)

    results = twice_at_once(app, lambda s: maintenance.expire_pending(s, now=utcnow(), ttl=ttl))

    assert sorted(results, key=len) == [[], [old.execution_id]]
    assert row_status(old.execution_id) == Status.EXPIRED
    assert row_status(young.execution_id) == Status.PENDING
    assert events("execution.expired") == 1
    with fresh_read() as session:
        assert session.scalar(select(func.count()).select_from(PurchaseSuppression)) == 0


@pytest.mark.parametrize("status", [Status.APPROVED, Status.RUNNING])
def test_reaping_twice_at_once_fails_a_stuck_row_once(app, committed_db, status):
    after = timedelta(minutes=10)
    with unit_of_work() as session:
        stuck = make_execution(session, status, updated_at=utcnow() - timedelta(minutes=11))
        busy = make_execution(session, status)  # touched just now: its worker is alive

    results = twice_at_once(app, lambda s: maintenance.reap_stuck(s, now=utcnow(), after=after))

    assert sorted(results, key=len) == [[], [stuck.execution_id]]
    assert row_status(stuck.execution_id) == Status.FAILED
    assert row_status(busy.execution_id) == status
    assert events("execution.reaped") == 1


def test_a_long_run_its_heartbeat_keeps_alive_is_not_reaped(app, committed_db):
    """A provider call may outlast REAPER_MINUTES: the lease, renewed, says the worker
    lives; once it lapses, the row is reaped like any other."""
    long_ago = utcnow() - timedelta(minutes=30)
    with unit_of_work() as session:
        alive = make_execution(
            session,
            Status.RUNNING,
            updated_at=long_ago,
            lease_owner="task-1",
            lease_expires_at=utcnow() + timedelta(seconds=10),
        )
    with unit_of_work() as session:
        assert maintenance.reap_stuck(session, now=utcnow(), after=timedelta(minutes=10)) == []
    later = utcnow() + timedelta(seconds=11)
    with unit_of_work() as session:
        reaped = maintenance.reap_stuck(session, now=later, after=timedelta(minutes=10))
    assert reaped == [alive.execution_id]


def test_unstarted_approved_rows_are_found_and_started_once(app, committed_db):
    with unit_of_work() as session:
        lost = make_execution(
            session,
            Status.APPROVED,
            recommendations=[recommendation()],
            updated_at=utcnow() - timedelta(minutes=3),
        )
        fresh = make_execution(session, Status.APPROVED, recommendations=[recommendation()])

    with unit_of_work() as session:
        found = maintenance.recover_lapsed_work(session, now=utcnow())
    assert found.executions == [lost.execution_id]
    with unit_of_work() as session:  # handed to the broker: not again until that lapses
        assert not maintenance.recover_lapsed_work(session, now=utcnow())
    with unit_of_work() as session:
        later = utcnow() + UNSTARTED_AFTER + timedelta(seconds=1)
        # Both have waited longer than a healthy queue takes by then.
        again = maintenance.recover_lapsed_work(session, now=later).executions
        assert set(again) == {lost.execution_id, fresh.execution_id}

    # Beat may queue it while its first task arrives after all: one start wins.
    started = twice_at_once(
        app,
        lambda s: executor.start(
            s, lost.execution_id, owner="test-run", policy=ApprovalPolicy(), now=utcnow()
        ),
    )
    assert sum(isinstance(run, executor.Run) for run in started) == 1
    assert row_status(lost.execution_id) == Status.RUNNING
    assert row_status(fresh.execution_id) == Status.APPROVED
    assert events("execution.running") == 1
