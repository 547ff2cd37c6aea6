"""Beat's housekeeping tasks. Thin: the rules live in `app.services.maintenance`."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.exc import OperationalError

from app import get_settings
from app.db import unit_of_work, utcnow
from app.services import maintenance, retry
from tasks.notifications import send_approval_email
from tasks.transient import DATABASE_MAX_RETRIES
from tasks.worker import celery

# Older than the longest an email task may still be backing off (EMAIL_MAX_RETRIES).
UNSENT_EMAIL_AFTER = timedelta(minutes=15)
# Older than the longest a retry task may still be backing off on database errors.
STALLED_REQUEST_AFTER = timedelta(minutes=5)

_TRANSIENT = {
    "autoretry_for": (OperationalError,),
    "retry_backoff": True,
    "max_retries": DATABASE_MAX_RETRIES,
}


@celery.task(name="maintenance.expire_pending_executions", **_TRANSIENT)
def expire_pending_executions() -> list[str]:
    """Expire `pending` executions older than the approval TTL."""
    ttl = timedelta(hours=get_settings().approval_token_ttl_hours)
    with unit_of_work() as session:
        expired = maintenance.expire_pending(session, now=utcnow(), ttl=ttl)
    return [str(execution_id) for execution_id in expired]


@celery.task(name="maintenance.reap_stuck_executions", **_TRANSIENT)
def reap_stuck_executions() -> list[str]:
    """Fail `approved`/`running` executions with no progress for `REAPER_MINUTES`."""
    after = timedelta(minutes=get_settings().reaper_minutes)
    with unit_of_work() as session:
        reaped = maintenance.reap_stuck(session, now=utcnow(), after=after)
    return [str(execution_id) for execution_id in reaped]


@celery.task(name="maintenance.requeue_unsent_approval_emails", **_TRANSIENT)
def requeue_unsent_approval_emails() -> list[str]:
    """Queue the approval email again for pending rows that never got one."""
    with unit_of_work() as session:
        unsent = maintenance.unsent_approval_emails(session, now=utcnow(), after=UNSENT_EMAIL_AFTER)
    for execution_id in unsent:
        send_approval_email.delay(str(execution_id))
    return [str(execution_id) for execution_id in unsent]


@celery.task(name="maintenance.requeue_stalled_retry_requests", **_TRANSIENT)
def requeue_stalled_retry_requests() -> list[str]:
    """Queue the task again for retry requests that never reached a worker."""
    with unit_of_work() as session:
        stalled = maintenance.stalled_retry_requests(
            session, now=utcnow(), after=STALLED_REQUEST_AFTER
        )
    for request in stalled:
        retry.enqueue_retry(request)
    return [str(request.id) for request in stalled]
