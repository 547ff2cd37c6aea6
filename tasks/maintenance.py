"""Beat's housekeeping tasks. Thin: the rules live in `app.services.maintenance`."""

from __future__ import annotations

from datetime import timedelta

from celery import Task

from app import background
from app.config import get_settings
from app.db import unit_of_work, utcnow
from app.services import approvals, maintenance, reminders, retry, schedules
from app.task_names import (
    EXPIRE_PENDING,
    FORGET_SIGN_IN_FAILURES,
    REAP_STUCK,
    RECOVER_LAPSED,
    RELEASE_DUE,
    SEND_DIGEST_OF_KIND,
    SEND_EMAIL_OF_KIND,
    SEND_OUTCOME_EMAIL,
    SEND_REMINDER_EMAIL,
    SEND_SCHEDULE_REMINDERS,
)
from tasks.channels import recover_lapsed_messages
from tasks.transient import database_task


@database_task(EXPIRE_PENDING)
def expire_pending_executions(_task: Task) -> list[str]:
    """Expire `pending` executions older than the approval TTL."""
    ttl = timedelta(hours=get_settings().approval_token_ttl_hours)
    with unit_of_work() as session:
        expired = maintenance.expire_pending(session, now=utcnow(), ttl=ttl)
    return [str(execution_id) for execution_id in expired]


@database_task(REAP_STUCK)
def reap_stuck_executions(_task: Task) -> list[str]:
    """Fail `approved`/`running` executions with no progress for `REAPER_MINUTES`."""
    after = timedelta(minutes=get_settings().reaper_minutes)
    with unit_of_work() as session:
        reaped = maintenance.reap_stuck(session, now=utcnow(), after=after)
    return [str(execution_id) for execution_id in reaped]


# Every few seconds (`app.domain.staleness.SWEEP_EVERY`); never retried: the next run
# comes soon enough.
@database_task(RECOVER_LAPSED, max_retries=0)
def recover_lapsed_work(_task: Task) -> dict[str, int]:
    """Queue again the work whose worker died or whose message the broker lost: retry
    chunks, approved executions, emails; fail the runs of dead workers."""
    with unit_of_work() as session:
        recovered = maintenance.recover_lapsed_work(session, now=utcnow())
    for batch_id, chunk in recovered.chunks:
        retry.enqueue_chunk(batch_id, chunk)
    for execution_id in recovered.executions:
        approvals.enqueue_execution(execution_id)
    for execution_id in recovered.interrupted:
        background.enqueue(SEND_OUTCOME_EMAIL, [str(execution_id)])
    for kind, execution_id in recovered.emails:
        background.enqueue(SEND_EMAIL_OF_KIND[kind], [str(execution_id)])
    for kind, batch_id in recovered.digests:
        background.enqueue(SEND_DIGEST_OF_KIND[kind], [str(batch_id)])
    return {
        "chunks": len(recovered.chunks),
        "executions": len(recovered.executions),
        "interrupted": len(recovered.interrupted),
        "emails": len(recovered.emails),
        "digests": len(recovered.digests),
        "channel_messages": recover_lapsed_messages(),
    }


# Every SCHEDULE_CHECK_SECONDS; never retried: the next run comes soon enough.
@database_task(RELEASE_DUE, max_retries=0)
def release_due(_task: Task) -> list[str]:
    """Hand the approved executions whose scheduled time has come (and that wait for
    nothing else: their plan, the freeze) to the executor, queued once committed."""
    with unit_of_work() as session:
        released = schedules.release_due(session, now=utcnow())
    for execution_id in released:
        approvals.enqueue_execution(execution_id)
    return [str(execution_id) for execution_id in released]


@database_task(FORGET_SIGN_IN_FAILURES)
def forget_old_sign_in_failures(_task: Task) -> int:
    """Drop failed sign-in counts that no longer count."""
    with unit_of_work() as session:
        return maintenance.forget_old_sign_in_failures(session, now=utcnow())


@database_task(SEND_SCHEDULE_REMINDERS)
def send_schedule_reminders(_task: Task) -> list[str]:
    """Owe the reminder of each scheduled execution that starts within
    `SCHEDULE_REMINDER_HOURS` (0: none), once per row, and queue its email."""
    hours = get_settings().schedule_reminder_hours
    if not hours:
        return []
    with unit_of_work() as session:
        owed = reminders.owe_schedule_reminders(session, now=utcnow(), ahead=timedelta(hours=hours))
    for execution_id in owed:
        background.enqueue(SEND_REMINDER_EMAIL, [str(execution_id)])
    return [str(execution_id) for execution_id in owed]
