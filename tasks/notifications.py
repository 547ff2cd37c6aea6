"""`notifications.send_approval_email`: the approval email, settled once per execution.
Thin: the outbox lives in `app.services.notifications`."""

from __future__ import annotations

import uuid

from celery import Task

from app import get_settings
from app.db import unit_of_work, utcnow
from app.mail import SendFailure, send_message
from app.services import notifications
from tasks.transient import database_task

SEND_APPROVAL_EMAIL = "notifications.send_approval_email"


# The outcome is recorded on the notification and the execution; Flower sees it too.
@database_task(SEND_APPROVAL_EMAIL, max_retries=None, ignore_result=True)
def send_approval_email(task: Task, execution_id: str) -> str:
    """Claim the execution's approval email, send it with no transaction open, and
    record what happened (SPEC section 4).

    A transient SMTP failure is retried after EMAIL_RETRY_BASE_SECONDS, then twice
    that, and so on, EMAIL_MAX_RETRIES times; then the execution fails with
    `send failed: <reply>`, as it does at once on a permanent refusal.
    """
    settings = get_settings()
    with unit_of_work() as session:
        email = notifications.claim_approval_email(
            session, uuid.UUID(execution_id), settings=settings, now=utcnow()
        )
    if email is None:
        return "nothing to send"
    try:
        send_message(settings, email.message)
    except SendFailure as failure:
        with unit_of_work() as session:
            wait = notifications.record_failure(
                session, email, failure, settings=settings, now=utcnow()
            )
        if wait is None:
            return "failed"
        raise task.retry(exc=failure, countdown=wait) from failure
    with unit_of_work() as session:
        notifications.record_sent(session, email, now=utcnow())
    return "sent"
