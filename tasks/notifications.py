"""`notifications.send_approval_email`, `notifications.send_outcome_email` and
`notifications.send_reminder_email`: each email settled once per execution;
`notifications.send_approval_digest` and `notifications.send_outcome_digest`: a bulk
retry's approval emails, and its outcome emails, one message per person. Thin: the
outbox lives in `app.services.notifications` and `app.services.digests`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from itertools import groupby
from typing import Protocol

from sqlalchemy.orm import Session

from app import background
from app.config import Settings, get_settings
from app.db import unit_of_work, utcnow
from app.mail import SendFailure, send_message
from app.services import deliveries, digests, leases, notifications, reminders
from app.task_names import (
    SEND_APPROVAL_DIGEST,
    SEND_APPROVAL_EMAIL,
    SEND_APPROVAL_EMAILS,
    SEND_OUTCOME_DIGEST,
    SEND_OUTCOME_EMAIL,
    SEND_REMINDER_EMAIL,
)
from tasks.transient import ProductTask, database_task

Refusal = tuple[deliveries.OutgoingEmail, SendFailure]

# A chunk's emails are recorded as sent this many at a time: few transactions, and
# little to send twice should the worker die between sending and recording.
RECORD_SENT_EVERY = 50


class Claim(Protocol):
    """What differs between the kinds: claiming the email and preparing its messages
    (an approval email has one per recipient); sending and recording are one path."""

    def __call__(
        self,
        session: Session,
        execution_id: uuid.UUID,
        *,
        owner: str,
        settings: Settings,
        now: datetime,
    ) -> list[deliveries.OutgoingEmail]: ...


def _claim_outcome_email(
    session: Session, execution_id: uuid.UUID, *, owner: str, settings: Settings, now: datetime
) -> list[deliveries.OutgoingEmail]:
    email = notifications.claim_outcome_email(
        session, execution_id, owner=owner, settings=settings, now=now
    )
    return [email] if email is not None else []


# What happened is recorded on the notification (and an approval email's execution), so
# the tasks keep no result; Flower still sees each run.
@database_task(SEND_APPROVAL_EMAIL, ignore_result=True)
def send_approval_email(task: ProductTask, execution_id: str) -> str:
    """The approval email of a pending execution."""
    return _send(task, execution_id, notifications.claim_approval_email)


@database_task(SEND_OUTCOME_EMAIL, ignore_result=True)
def send_outcome_email(task: ProductTask, execution_id: str) -> str:
    """The outcome email of an ended execution, to its creator (or the account contact).
    A bulk retry's row waits in its batch's outcome digest instead: the first of a
    window queues the digest for when the window closes."""
    with unit_of_work() as session:
        window = digests.outcome_window_to_queue(session, uuid.UUID(execution_id))
    if window is not None:
        batch_id, closes_at = window
        wait = max(0.0, (closes_at - utcnow()).total_seconds())
        background.enqueue(SEND_OUTCOME_DIGEST, [str(batch_id)], countdown=wait)
        return "in the batch's outcome digest"
    return _send(task, execution_id, _claim_outcome_email)


@database_task(SEND_REMINDER_EMAIL, ignore_result=True)
def send_reminder_email(task: ProductTask, execution_id: str) -> str:
    """The reminder to the approvers that a scheduled execution starts soon."""
    return _send(task, execution_id, reminders.claim_reminder_email)


def _send(task: ProductTask, execution_id: str, claim: Claim) -> str:
    """Claim the email, send its messages with no transaction open, and record what
    happened.

    A transient SMTP failure is retried after EMAIL_RETRY_BASE_SECONDS, then twice
    that, and so on, EMAIL_MAX_RETRIES times; then the email fails for good with
    `send failed: <reply>`, as it does at once on a permanent refusal. Those attempts
    are counted on the notification, not by Celery: each comes as a fresh message
    (`send_again`), so SMTP retries never spend the task's database budget.
    """
    settings = get_settings()
    owner = task.run_id
    with leases.holding(owner):
        with unit_of_work() as session:
            emails = claim(
                session, uuid.UUID(execution_id), owner=owner, settings=settings, now=utcnow()
            )
        if not emails:
            return "nothing to send"
        sent, failed = _deliver(settings, emails)
        with unit_of_work() as session:
            wait = deliveries.record_attempt(session, sent, failed, settings=settings, now=utcnow())
    if sent:
        return "sent"
    if wait is None:
        return "failed"
    task.send_again([execution_id], countdown=wait, exc=failed[0][1])


def _deliver(
    settings: Settings, emails: Sequence[deliveries.OutgoingEmail]
) -> tuple[list[deliveries.OutgoingEmail], list[tuple[deliveries.OutgoingEmail, SendFailure]]]:
    """Hand each message to the SMTP server: those it took, and those it refused."""
    sent, failed = [], []
    for email in emails:
        try:
            send_message(settings, email.message)
        except SendFailure as failure:
            failed.append((email, failure))
        else:
            sent.append(email)
    return sent, failed


@database_task(SEND_APPROVAL_EMAILS, ignore_result=True)
def send_approval_emails(task: ProductTask, *execution_ids: str) -> dict[str, int]:
    """The approval emails of a bulk retry's chunk: claimed in one transaction, sent
    over one SMTP connection, recorded as sent a few dozen at a time.

    Each email is claimed once, so a redelivered task sends none twice. One the server
    does not take is recorded as the single task would record it; a transient failure
    goes to `send_approval_email` after its backoff, alone.
    """
    settings = get_settings()
    with leases.holding(task.run_id):
        return _send_many(settings, task.run_id, [uuid.UUID(id_) for id_ in execution_ids])


def _send_many(settings: Settings, owner: str, execution_ids: list[uuid.UUID]) -> dict[str, int]:
    with unit_of_work() as session:
        emails = notifications.claim_approval_emails(
            session, execution_ids, owner=owner, settings=settings, now=utcnow()
        )
    buffered: list[deliveries.OutgoingEmail] = []
    failed = 0
    for _, group in groupby(emails, key=lambda email: email.notification_id):
        sent, refused = _deliver(settings, list(group))
        if refused:
            with unit_of_work() as session:
                wait = deliveries.record_attempt(
                    session, sent, refused, settings=settings, now=utcnow()
                )
            if not sent:
                failed += 1
                if wait is not None:
                    background.enqueue(
                        SEND_APPROVAL_EMAIL, [str(refused[0][0].execution_id)], countdown=wait
                    )
            continue
        buffered.extend(sent)
        if len(buffered) >= RECORD_SENT_EVERY:
            _record_sent(buffered)
            buffered = []
    _record_sent(buffered)
    return {"claimed": len(emails), "failed": failed}


def _record_sent(emails: list[deliveries.OutgoingEmail]) -> None:
    if emails:
        with unit_of_work() as session:
            deliveries.record_all_sent(session, emails, now=utcnow())


@database_task(SEND_APPROVAL_DIGEST, ignore_result=True)
def send_approval_digest(task: ProductTask, batch_id: str) -> dict[str, int]:
    """A bulk retry's approval emails: one digest per person, over one SMTP connection.
    After a transient refusal this task comes again after the backoff for what is
    still owed (`_send_digests`)."""
    return _send_digests(task, SEND_APPROVAL_DIGEST, batch_id, digests.claim_approval_digest)


@database_task(SEND_OUTCOME_DIGEST, ignore_result=True)
def send_outcome_digest(task: ProductTask, batch_id: str) -> dict[str, int]:
    """A bulk retry's outcome emails whose window has closed: one digest per creator."""
    return _send_digests(task, SEND_OUTCOME_DIGEST, batch_id, digests.claim_outcome_digest)


class DigestClaim(Protocol):
    def __call__(
        self,
        session: Session,
        batch_id: uuid.UUID,
        *,
        owner: str,
        settings: Settings,
        now: datetime,
    ) -> list[deliveries.OutgoingEmail]: ...


def _send_digests(
    task: ProductTask, task_name: str, batch_id: str, claim: DigestClaim
) -> dict[str, int]:
    """Claim a batch's digest, send each message once, and record each row's email: sent
    when any message listing it was taken, else as the single email would be. The rows
    are claimed once, so a redelivered task sends nothing twice; what a transient
    refusal leaves owed comes again through `task_name` after the backoff."""
    settings = get_settings()
    with leases.holding(task.run_id):
        with unit_of_work() as session:
            emails = claim(
                session, uuid.UUID(batch_id), owner=task.run_id, settings=settings, now=utcnow()
            )
        messages: dict[int, list[deliveries.OutgoingEmail]] = {}
        for email in emails:
            messages.setdefault(id(email.message), []).append(email)
        outcome: dict[uuid.UUID, tuple[list[deliveries.OutgoingEmail], list[Refusal]]] = {}
        for listed in messages.values():
            try:
                send_message(settings, listed[0].message)
            except SendFailure as failure:
                for email in listed:
                    outcome.setdefault(email.notification_id, ([], []))[1].append((email, failure))
            else:
                for email in listed:
                    outcome.setdefault(email.notification_id, ([], []))[0].append(email)
        with unit_of_work() as session:
            deliveries.record_all_sent(
                session,
                [email for sent, refused in outcome.values() if not refused for email in sent],
                now=utcnow(),
            )
            waits = [
                deliveries.record_attempt(session, sent, refused, settings=settings, now=utcnow())
                for sent, refused in outcome.values()
                if refused
            ]
    due = [wait for wait in waits if wait is not None]
    if due:
        background.enqueue(task_name, [batch_id], countdown=max(due))
    return {
        "messages": len(messages),
        "rows": len(outcome),
        "failed": sum(1 for sent, refused in outcome.values() if refused and not sent),
    }
