"""Beat's maintenance tasks, run by a real Celery worker consuming from Redis."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.db import fresh_read, unit_of_work, utcnow
from app.domain.outbox import MAX_WAIT_SECONDS
from app.domain.staleness import MAX_RETRY_DELAY, UNOWED_AFTER
from app.domain.statuses import Status
from app.models import AuditEvent, PurchaseExecution, PurchaseSuppression, RetryBatchItem
from app.services.identity import principal_for
from tasks.maintenance import (
    expire_pending_executions,
    reap_stuck_executions,
    recover_lapsed_work,
)
from tasks.transient import DATABASE_BACKOFF_MAX_SECONDS
from tests.factories import make_execution, make_suppression, make_user
from tests.support.commands import wait_until
from tests.support.retries import request_retry, request_state

pytestmark = pytest.mark.worker


def status_of(_session, execution_id) -> str:
    with fresh_read() as session:
        return session.get(PurchaseExecution, execution_id, populate_existing=True).status


def test_tasks_have_stable_readable_names_and_queues(app):
    celery_app = app.extensions["celery"]
    assert "maintenance.expire_pending_executions" in celery_app.tasks
    assert "maintenance.reap_stuck_executions" in celery_app.tasks
    route = celery_app.amqp.router.route({}, "maintenance.expire_pending_executions")
    assert route["queue"].name == "maintenance"


def test_worker_configuration_is_at_least_once_and_json_only(app):
    conf = app.extensions["celery"].conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.worker_send_task_events and conf.task_send_sent_event
    # Redis must not hand out a delayed retry (its countdown) or a long run twice.
    longest_countdown = max(MAX_WAIT_SECONDS, DATABASE_BACKOFF_MAX_SECONDS)
    assert longest_countdown <= MAX_RETRY_DELAY.total_seconds()
    limit = conf.task_time_limit
    assert conf.broker_transport_options["visibility_timeout"] > limit + longest_countdown


def test_the_worker_expires_old_pending_rows(committed_db, celery_worker, settings):
    ttl = timedelta(hours=settings.approval_token_ttl_hours)
    now = utcnow()
    with unit_of_work() as session:
        old = make_execution(session, Status.PENDING, created_at=now - ttl - timedelta(minutes=1))
        fresh = make_execution(session, Status.PENDING, created_at=now - ttl + timedelta(hours=1))
        old_failed = make_execution(session, Status.FAILED, created_at=now - 2 * ttl)
        make_suppression(session, old)
        ids = (old.execution_id, fresh.execution_id, old_failed.execution_id)

    expired = expire_pending_executions.delay().get(timeout=30)

    assert expired == [str(ids[0])]
    assert [status_of(committed_db, i) for i in ids] == ["expired", "pending", "failed"]
    with fresh_read() as session:
        assert session.scalars(select(PurchaseSuppression)).all() == []
        event = session.scalars(select(AuditEvent)).one()
    assert (event.action, event.execution_id, event.actor_email) == (
        "execution.expired",
        ids[0],
        "system",
    )


def test_the_worker_reaps_stuck_in_flight_rows(committed_db, celery_worker, settings):
    stale = utcnow() - timedelta(minutes=settings.reaper_minutes + 1)
    with unit_of_work() as session:
        stuck_running = make_execution(session, Status.RUNNING, updated_at=stale)
        stuck_approved = make_execution(session, Status.APPROVED, updated_at=stale)
        busy = make_execution(session, Status.RUNNING)
        stale_pending = make_execution(session, Status.PENDING, updated_at=stale)
        ids = [r.execution_id for r in (stuck_running, stuck_approved, busy, stale_pending)]

    reaped = reap_stuck_executions.delay().get(timeout=30)

    assert sorted(reaped) == sorted(str(i) for i in ids[:2])
    assert [status_of(committed_db, i) for i in ids] == ["failed", "failed", "running", "pending"]
    with fresh_read() as session:
        row = session.get(PurchaseExecution, ids[0], populate_existing=True)
        assert row.error.startswith("reaped: no progress for more than")
        actions = sorted(e.action for e in session.scalars(select(AuditEvent)))
    assert actions == ["execution.reaped", "execution.reaped"]


def test_beat_requeues_approval_emails_that_were_never_sent(committed_db, celery_worker, mailbox):
    long_ago = utcnow() - UNOWED_AFTER - timedelta(minutes=1)
    with unit_of_work() as session:
        owner = make_user(session)
        lost = make_execution(session, Status.PENDING, created_by=owner, created_at=long_ago)
        fresh = make_execution(session, Status.PENDING, created_by=owner)
        sent = make_execution(
            session,
            Status.PENDING,
            created_by=owner,
            created_at=long_ago,
            notification_sent_at=long_ago,
        )
        failed = make_execution(session, Status.FAILED, created_by=owner, created_at=long_ago)

    requeued = recover_lapsed_work.delay().get(timeout=30)

    assert requeued["emails"] == 1
    wait_until(lambda: mailbox.messages, what="the requeued approval email")
    assert mailbox.messages[0].rcpt_tos == [owner.email]
    assert status_of(committed_db, lost.execution_id) == "pending"
    with fresh_read() as session:
        assert session.get(PurchaseExecution, lost.execution_id).notification_sent_at
        for untouched in (fresh, sent, failed):
            assert session.get(PurchaseExecution, untouched.execution_id).notification_sent_at in (
                None,
                untouched.notification_sent_at,
            )
    time.sleep(0.5)
    assert len(mailbox.messages) == 1


def test_the_sweep_requeues_retry_requests_whose_task_was_lost(app, committed_db, celery_worker):
    with unit_of_work() as session:
        owner = make_user(session)
        row = make_execution(
            session, Status.FAILED, created_by=owner, error="capacity", recommendations=[]
        )
        lost = request_retry(session, principal_for(owner), row.execution_id)
        # The broker's lease on it lapsed: no worker ever claimed it.
        session.get(RetryBatchItem, (lost.id, 0)).lease_expires_at = utcnow()
    # The web layer committed, then the broker lost the task: nothing was ever queued.

    requeued = recover_lapsed_work.delay().get(timeout=30)

    assert requeued["chunks"] == 1

    def state() -> str:
        with fresh_read() as session:
            return request_state(session, lost.id).state

    wait_until(lambda: state() != "queued", what="the requeued request to settle")
    assert state() == "succeeded"


def test_every_task_retries_database_errors_as_the_one_policy_says(app):
    """Celery's own limit (3) used to cut the maintenance tasks' 5 retries short."""
    import tasks  # noqa: F401  (registers the product's tasks)
    from tasks.transient import DATABASE_MAX_RETRIES

    registered = app.extensions["celery"].tasks
    for name in (
        "maintenance.expire_pending_executions",
        "maintenance.reap_stuck_executions",
        "purchases.retry_execution",
    ):
        assert registered[name].max_retries == DATABASE_MAX_RETRIES, name
    # The email task's SMTP failures are counted on the notification (EMAIL_MAX_RETRIES),
    # apart from the database's budget, which is the same as every other task's.
    assert registered["notifications.send_approval_email"].max_retries == DATABASE_MAX_RETRIES
