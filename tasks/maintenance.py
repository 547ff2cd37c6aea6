"""Beat's housekeeping tasks. Thin: the rules live in `app.services.maintenance`."""

from __future__ import annotations

from datetime import timedelta

from celery import Task

from app import background
from app.config import get_settings
from app.db import unit_of_work, utcnow
from app.domain.outbox import UNOWED_AFTER
from app.services import approvals, bulk_retry, maintenance, retry
from tasks.notifications import TASK_OF_KIND
from tasks.transient import database_task

# Older than the longest a retry task may still be backing off on database errors.
STALLED_REQUEST_AFTER = timedelta(minutes=5)
# Longer than an approved row waits in a healthy queue; far shorter than the reaper's.
UNSTARTED_AFTER = timedelta(minutes=2)


@database_task("maintenance.expire_pending_executions")
def expire_pending_executions(_task: Task) -> list[str]:
    """Expire `pending` executions older than the approval TTL."""
    ttl = timedelta(hours=get_settings().approval_token_ttl_hours)
    with unit_of_work() as session:
        expired = maintenance.expire_pending(session, now=utcnow(), ttl=ttl)
    return [str(execution_id) for execution_id in expired]


@database_task("maintenance.reap_stuck_executions")
def reap_stuck_executions(_task: Task) -> list[str]:
    """Fail `approved`/`running` executions with no progress for `REAPER_MINUTES`."""
    after = timedelta(minutes=get_settings().reaper_minutes)
    with unit_of_work() as session:
        reaped = maintenance.reap_stuck(session, now=utcnow(), after=after)
    return [str(execution_id) for execution_id in reaped]


# The name is older than the outcome email; it re-queues every kind of email.
@database_task("maintenance.requeue_lost_approval_emails")
def requeue_lost_approval_emails(_task: Task) -> list[str]:
    """Queue each email again, to its own task, where no task is working on it any more."""
    with unit_of_work() as session:
        lost = maintenance.lost_emails(session, now=utcnow(), after=UNOWED_AFTER)
    for kind, execution_id in lost:
        background.enqueue(TASK_OF_KIND[kind], [str(execution_id)])
    return [str(execution_id) for _, execution_id in lost]


@database_task("maintenance.requeue_stalled_retry_requests")
def requeue_stalled_retry_requests(_task: Task) -> list[str]:
    """Queue the task again for retry requests that never reached a worker."""
    with unit_of_work() as session:
        stalled = maintenance.stalled_retry_requests(
            session, now=utcnow(), after=STALLED_REQUEST_AFTER
        )
    for request in stalled:
        retry.enqueue_retry(request)
    return [str(request.id) for request in stalled]


@database_task("maintenance.requeue_stalled_retry_batches")
def requeue_stalled_retry_batches(_task: Task) -> list[str]:
    """Queue the task again for bulk retry chunks that never reached a worker."""
    with unit_of_work() as session:
        stalled = bulk_retry.stalled_chunks(session, now=utcnow(), after=STALLED_REQUEST_AFTER)
    for batch, chunk in stalled:
        bulk_retry.enqueue_chunks(batch, [chunk])
    return [f"{batch.id}:{chunk}" for batch, chunk in stalled]


@database_task("maintenance.forget_old_sign_in_failures")
def forget_old_sign_in_failures(_task: Task) -> int:
    """Drop failed sign-in counts that no longer count."""
    with unit_of_work() as session:
        return maintenance.forget_old_sign_in_failures(session, now=utcnow())


@database_task("maintenance.requeue_unstarted_executions")
def requeue_unstarted_executions(_task: Task) -> list[str]:
    """Queue the executor again for approved rows it has not started: their task never
    reached a worker. A duplicate is harmless: a row is started once."""
    with unit_of_work() as session:
        unstarted = maintenance.unstarted_executions(session, now=utcnow(), after=UNSTARTED_AFTER)
    for execution_id in unstarted:
        approvals.enqueue_execution(execution_id)
    return [str(execution_id) for execution_id in unstarted]
