"""`notifications.send_approval_email`: the approval email, once per execution."""

from __future__ import annotations

import uuid

from celery import Task

from app import get_settings
from app.db import unit_of_work, utcnow
from app.services import notifications
from tasks.transient import DATABASE_MAX_RETRIES, backoff_seconds, is_transient_database_error
from tasks.worker import celery


# The outcome is recorded on the execution; Flower sees it through task events.
@celery.task(
    name="notifications.send_approval_email", bind=True, max_retries=None, ignore_result=True
)
def send_approval_email(self: Task, execution_id: str) -> str:
    """Send it, or fail the execution with the reason (SPEC section 4).

    A transient SMTP failure is retried after EMAIL_RETRY_BASE_SECONDS, then twice
    that, and so on, EMAIL_MAX_RETRIES times; the last attempt fails the execution with
    `send failed: <reply>`. A transient database error is retried with backoff.
    """
    settings = get_settings()
    retries = self.request.retries
    try:
        with unit_of_work() as session:
            return notifications.send_approval_email(
                session,
                uuid.UUID(execution_id),
                settings=settings,
                now=utcnow(),
                final_attempt=retries >= settings.email_max_retries,
            )
    except notifications.TransientSendFailure as exc:
        wait = backoff_seconds(retries, base=settings.email_retry_base_seconds)
        raise self.retry(exc=exc, countdown=wait) from exc
    except Exception as exc:
        if is_transient_database_error(exc) and retries < DATABASE_MAX_RETRIES:
            raise self.retry(exc=exc, countdown=backoff_seconds(retries)) from exc
        raise
