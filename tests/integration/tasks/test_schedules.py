"""Schedules, plans and the global freeze with a real worker and a real beat: what waits
starts nothing, for as long as it waits, and starts once, as soon as it stops waiting.

Beat runs with `SCHEDULE_CHECK_SECONDS` at two seconds (the release of scheduled rows)
besides the sweep (every five): every job that could start a row is running.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.db import fresh_read, unit_of_work, utcnow
from app.domain.rbac import Action
from app.domain.statuses import Status
from app.models import AuditEvent, ProviderPurchase, PurchaseExecution
from app.services import approvals, controls, maintenance
from app.services.identity import principal_for
from tests.factories import make_account, make_execution, make_plan, make_user, recommendation
from tests.support.commands import start_celery, stop_worker, wait_until

pytestmark = pytest.mark.worker

CHECK_SECONDS = 2
# A released row's task goes through the broker to a solo worker: this much on top of
# the beat interval is the most its start may lag.
LATENCY = 1.5


@pytest.fixture
def quick_beat(settings, committed_db, redis_db, tmp_path) -> Iterator[None]:
    """`celery -A tasks beat` releasing scheduled rows every `CHECK_SECONDS`."""
    process = start_celery(
        settings,
        "beat",
        "--loglevel=WARNING",
        "-s",
        str(tmp_path / "beat-schedule"),
        SCHEDULE_CHECK_SECONDS=str(CHECK_SECONDS),
    )
    yield
    stop_worker(process)


@pytest.fixture
def people(committed_db):
    with unit_of_work() as session:
        admin = make_user(session, "root@example.com", ("Administrators",))
        buyer = make_user(session, "buyer@example.com", ("Purchasers",))
        return admin, buyer


def principal(user):
    with fresh_read() as session:
        return principal_for(session.merge(user))


def pending_rows(count: int, creator, **fields) -> list:
    with unit_of_work() as session:
        account = make_account(session)
        return [
            make_execution(
                session,
                Status.PENDING,
                created_by=creator,
                cloud_account_id=account.id,
                recommendations=[recommendation(count=1), recommendation(resource_type="c5.large")],
                **fields,
            ).execution_id
            for _ in range(count)
        ]


def approve(user, execution_id) -> None:
    approvals.decide(principal(user), execution_id, Action.APPROVE)


def statuses(ids) -> list[str]:
    with fresh_read() as session:
        return [session.get(PurchaseExecution, id_, populate_existing=True).status for id_ in ids]


def running_events(ids) -> dict:
    """Each row's `execution.running` audit events' times."""
    with fresh_read() as session:
        rows = session.execute(
            select(AuditEvent.execution_id, AuditEvent.at).where(
                AuditEvent.action == "execution.running", AuditEvent.execution_id.in_(ids)
            )
        )
        found: dict = {id_: [] for id_ in ids}
        for execution_id, at in rows:
            found[execution_id].append(at)
        return found


def ledger_count() -> int:
    with fresh_read() as session:
        return session.scalar(select(func.count()).select_from(ProviderPurchase))


def all_completed(ids, timeout=30) -> None:
    wait_until(
        lambda: statuses(ids) == [Status.COMPLETED.value] * len(ids),
        timeout=timeout,
        what="every row to complete",
    )


def test_a_frozen_product_starts_nothing_then_everything_once(
    app, people, worker_processes, quick_beat, mailbox
):
    admin, buyer = people
    worker_processes("freeze")
    ids = pending_rows(3, buyer)
    controls.freeze(principal(admin), "bad recommendation run")

    for execution_id in ids:
        approve(buyer, execution_id)
    # A task queued before the freeze (or by hand) does nothing while it is on.
    approvals.enqueue_execution(ids[0])
    time.sleep(3 * CHECK_SECONDS + 5)  # several beat intervals and at least one sweep

    assert statuses(ids) == [Status.APPROVED.value] * 3
    assert running_events(ids) == {id_: [] for id_ in ids}
    assert ledger_count() == 0
    # Not stuck either: the reaper, ten minutes on, leaves waiting rows alone.
    with unit_of_work() as session:
        reaped = maintenance.reap_stuck(
            session, now=utcnow() + timedelta(minutes=11), after=timedelta(minutes=10)
        )
    assert reaped == []

    assert controls.lift(principal(admin)) == 3
    all_completed(ids)
    time.sleep(CHECK_SECONDS + 5)  # beat and the sweep again: nothing runs twice

    assert statuses(ids) == [Status.COMPLETED.value] * 3
    assert [len(times) for times in running_events(ids).values()] == [1, 1, 1]
    assert ledger_count() == 6


def test_a_scheduled_row_starts_within_one_beat_interval_of_its_time_never_before(
    app, people, worker_processes, quick_beat, mailbox
):
    _, buyer = people
    worker_processes("scheduled")
    scheduled_for = utcnow() + timedelta(seconds=6)
    [row] = pending_rows(1, buyer, scheduled_for=scheduled_for)
    approve(buyer, row)

    while utcnow() < scheduled_for - timedelta(seconds=0.5):
        assert statuses([row]) == [Status.APPROVED.value], "started before its time"
        time.sleep(0.2)
    all_completed([row], timeout=CHECK_SECONDS + 20)

    [[started]] = running_events([row]).values()
    assert scheduled_for <= started, f"started {scheduled_for - started} early"
    assert started - scheduled_for <= timedelta(seconds=CHECK_SECONDS + LATENCY), (
        f"started {started - scheduled_for} after its time"
    )


def test_a_paused_plan_waits_and_starts_when_resumed_and_run_now_starts_the_next_step(
    app, people, worker_processes, quick_beat, mailbox
):
    admin, buyer = people
    worker_processes("plans")
    with unit_of_work() as session:
        plan_id = make_plan(session).id
    [now_row] = pending_rows(1, buyer, plan_id=plan_id)
    [later_row] = pending_rows(
        1, buyer, plan_id=plan_id, step_number=3, scheduled_for=utcnow() + timedelta(days=7)
    )
    controls.pause(principal(buyer), str(plan_id))
    approve(buyer, now_row)
    approve(buyer, later_row)
    time.sleep(2 * CHECK_SECONDS + 5)

    assert statuses([now_row, later_row]) == [Status.APPROVED.value] * 2
    with fresh_read() as session:
        assert controls.list_plans(session)[0]["waiting"] == 2

    assert controls.resume(principal(admin), str(plan_id)).released == 1
    all_completed([now_row])
    assert statuses([later_row]) == [Status.APPROVED.value]  # its time has not come

    ran = controls.run_now(principal(admin), str(plan_id))
    assert (ran.step_number, ran.released) == (3, 1)
    all_completed([later_row])
    assert [len(times) for times in running_events([now_row, later_row]).values()] == [1, 1]
