"""`notifications.send_approval_email` and `notifications.send_outcome_email`: each email
settled once per execution. Thin: the outbox lives in `app.services.notifications`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

from celery import Task
from sqlalchemy.orm import Session

from app import background, get_settings
from app.config import Settings
from app.db import unit_of_work, utcnow
from app.domain.outbox import NotificationKind
from app.mail import SendFailure, send_message
from app.services import notifications
from tasks.transient import database_task

SEND_APPROVAL_EMAIL = "notifications.send_approval_email"
SEND_APPROVAL_EMAILS = "notifications.send_approval_emails"
# A chunk's emails are recorded as sent this many at a time: few transactions, and
# little to send twice should the worker die between sending and recording.
RECORD_SENT_EVERY = 50
SEND_OUTCOME_EMAIL = "notifications.send_outcome_email"
# The task that sends each kind of email (beat re-queues lost ones through it).
TASK_OF_KIND = {
    NotificationKind.APPROVAL: SEND_APPROVAL_EMAIL,
    NotificationKind.OUTCOME: SEND_OUTCOME_EMAIL,
}


class Claim(Protocol):
    """`notifications.claim_approval_email` or `claim_outcome_email`: the only step
    that differs between the kinds; claiming, sending and recording are one path."""

    def __call__(
        self, session: Session, execution_id: uuid.UUID, *, settings: Settings, now: datetime
    ) -> notifications.OutgoingEmail | None: ...


# What happened is recorded on the notification (and an approval email's execution), so
# the tasks keep no result; Flower still sees each run.
@database_task(SEND_APPROVAL_EMAIL, max_retries=None, ignore_result=True)
def send_approval_email(task: Task, execution_id: str) -> str:
    """The approval email of a pending execution (SPEC section 4)."""
    return _send(task, execution_id, notifications.claim_approval_email)


@database_task(SEND_OUTCOME_EMAIL, max_retries=None, ignore_result=True)
def send_outcome_email(task: Task, execution_id: str) -> str:
    """The outcome email of an ended execution, to its creator (or the account contact)."""
    return _send(task, execution_id, notifications.claim_outcome_email)


def _send(task: Task, execution_id: str, claim: Claim) -> str:
    """Claim the email, send it with no transaction open, and record what happened.

    A transient SMTP failure is retried after EMAIL_RETRY_BASE_SECONDS, then twice
    that, and so on, EMAIL_MAX_RETRIES times; then the email fails for good with
    `send failed: <reply>`, as it does at once on a permanent refusal.
    """
    settings = get_settings()
    with unit_of_work() as session:
        email = claim(session, uuid.UUID(execution_id), settings=settings, now=utcnow())
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


@database_task(SEND_APPROVAL_EMAILS, ignore_result=True)
def send_approval_emails(task: Task, *execution_ids: str) -> dict[str, int]:
    """The approval emails of a bulk retry's chunk: claimed in one transaction, sent
    over one SMTP connection, recorded as sent a few dozen at a time.

    Each email is claimed once, so a redelivered task sends none twice. One the server
    does not take is recorded as the single task would record it; a transient failure
    goes to `send_approval_email` after its backoff, alone.
    """
    settings = get_settings()
    with unit_of_work() as session:
        emails = notifications.claim_approval_emails(
            session, [uuid.UUID(id_) for id_ in execution_ids], settings=settings, now=utcnow()
        )
    sent: list[notifications.OutgoingEmail] = []
    failed = 0
    for email in emails:
        try:
            send_message(settings, email.message)
        except SendFailure as failure:
            failed += 1
            with unit_of_work() as session:
                wait = notifications.record_failure(
                    session, email, failure, settings=settings, now=utcnow()
                )
            if wait is not None:
                background.enqueue(SEND_APPROVAL_EMAIL, [str(email.execution_id)], countdown=wait)
            continue
        sent.append(email)
        if len(sent) >= RECORD_SENT_EVERY:
            _record_sent(sent)
            sent = []
    _record_sent(sent)
    return {"claimed": len(emails), "failed": failed}


def _record_sent(emails: list[notifications.OutgoingEmail]) -> None:
    if emails:
        with unit_of_work() as session:
            notifications.record_all_sent(session, emails, now=utcnow())
