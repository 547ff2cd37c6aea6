"""What happened to a claimed email (`app.services.notifications` claims it; a task
hands it to the SMTP server with no transaction open): settled once.

`record_sent` / `record_all_sent`: the server took it. `record_failure`: it did not;
sent again after a backoff while the refusal is transient and attempts remain, else
failed for good, which fails a pending execution (it cannot be approved without its
email); an ended execution is left as it is. `record_attempt`: one attempt of an
approval email that went to several recipients, sent when any of them took it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.mime.multipart import MIMEMultipart

from sqlalchemy import bindparam, delete, func, literal, update
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import UTCDateTime
from app.domain.outbox import NotificationKind, NotificationState, backoff_seconds, gives_up
from app.mail import SendFailure
from app.models import ApprovalToken, Notification, PurchaseExecution
from app.services import audit, transitions

APPROVAL = NotificationKind.APPROVAL.value


@dataclass(frozen=True)
class OutgoingEmail:
    """A claimed email, ready to hand to the SMTP server."""

    notification_id: uuid.UUID
    kind: NotificationKind
    execution_id: uuid.UUID
    attempt: int
    recipient: str
    message: MIMEMultipart
    token_hashes: tuple[str, ...] = ()  # an approval email's approve and cancel links
    expires_at: datetime | None = None


def record_sent(session: Session, email: OutgoingEmail, *, now: datetime) -> None:
    """The SMTP server accepted the message: the notification is sent, and for an
    approval email the execution says when (the first copy) and which approve link is
    the latest."""
    record_all_sent(session, [email], now=now)


def record_all_sent(session: Session, emails: Sequence[OutgoingEmail], *, now: datetime) -> None:
    """`record_sent` for many emails, in a statement per table."""
    if not emails:
        return
    session.execute(
        update(Notification)
        .where(Notification.id.in_([email.notification_id for email in emails]))
        .values(state=NotificationState.SENT.value, sent_at=now, error=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    audit.record_all(
        session,
        (
            audit.event(
                f"{email.kind.value}_email.sent",
                execution_id=email.execution_id,
                details={
                    "to": email.recipient,
                    "message_id": email.message["Message-ID"],
                    "attempt": email.attempt,
                },
            )
            for email in emails
        ),
    )
    approvals = [email for email in emails if email.kind is NotificationKind.APPROVAL]
    if not approvals:
        return
    executions = PurchaseExecution.__table__
    session.execute(
        update(executions)
        .where(executions.c.execution_id == bindparam("sent_execution_id"))
        .values(
            notification_sent_at=func.coalesce(
                executions.c.notification_sent_at, literal(now, UTCDateTime())
            ),
            approval_token_hash=bindparam("latest_token_hash"),
            approval_token_expires_at=bindparam("latest_expires_at", type_=UTCDateTime()),
        ),
        [
            {
                "sent_execution_id": email.execution_id,
                "latest_token_hash": email.token_hashes[0],
                "latest_expires_at": email.expires_at,
            }
            for email in approvals
        ],
    )


def record_failure(
    session: Session,
    email: OutgoingEmail,
    failure: SendFailure,
    *,
    settings: Settings,
    now: datetime,
) -> float | None:
    """The SMTP server did not accept the message; its links never went out.

    Returns the seconds to wait before the next attempt of a transient failure, or
    None when the email has failed for good: a permanent refusal, or the last attempt
    (`EMAIL_MAX_RETRIES`); with `send failed: <reply>`, a pending execution fails.
    """
    _withdraw_links(session, email)
    notification = session.get(Notification, email.notification_id, populate_existing=True)
    assert notification is not None
    if not failure.permanent and not gives_up(email.attempt, settings.email_max_retries):
        wait = backoff_seconds(email.attempt - 1, base=settings.email_retry_base_seconds)
        notification.state = NotificationState.QUEUED.value
        notification.due_at = now + timedelta(seconds=wait)
        notification.error = failure.reply
        notification.updated_at = now
        # Its next attempt is a message the task queues now, due after the backoff.
        notification.lease_owner = None
        notification.lease_expires_at = None
        return wait
    give_up(session, notification, f"send failed: {failure.reply}", now=now)
    return None


def record_attempt(
    session: Session,
    sent: Sequence[OutgoingEmail],
    failed: Sequence[tuple[OutgoingEmail, SendFailure]],
    *,
    settings: Settings,
    now: datetime,
) -> float | None:
    """One attempt at one notification, whose messages may have gone to several
    recipients. It is sent when any recipient's server took its message: someone who
    may decide has the links. The links of the messages that were not taken are
    withdrawn and each refusal is audited. When none was taken, the attempt fails as
    `record_failure` says (retried after a backoff while any refusal was transient),
    and the returned wait is that backoff, or None."""
    if sent:
        for email, failure in failed:
            _withdraw_links(session, email)
            audit.record(
                session,
                f"{email.kind.value}_email.recipient_failed",
                execution_id=email.execution_id,
                details={"to": email.recipient, "error": failure.reply},
            )
        record_all_sent(session, sent, now=now)
        return None
    if not failed:
        return None
    for email, _ in failed:
        _withdraw_links(session, email)
    transient = [pair for pair in failed if not pair[1].permanent]
    email, failure = (transient or list(failed))[0]
    return record_failure(session, email, failure, settings=settings, now=now)


def _withdraw_links(session: Session, email: OutgoingEmail) -> None:
    if email.token_hashes:
        session.execute(
            delete(ApprovalToken).where(ApprovalToken.token_hash.in_(email.token_hashes))
        )


def give_up(session: Session, notification: Notification, reason: str, *, now: datetime) -> None:
    """The email will not be sent. Without its approval email a pending execution
    cannot be approved: it fails with `reason` (leaving `pending`, it loses its
    suppressions; its lineage stays). An ended execution stays as it is; the trail
    says why its outcome email never came."""
    settle(notification, NotificationState.FAILED, now, error=reason)
    if notification.kind != APPROVAL:
        audit.record(
            session,
            f"{notification.kind}_email.failed",
            execution_id=notification.execution_id,
            details={"error": reason, "attempt": notification.attempts},
        )
        return
    transitions.fail_pending(session, [notification.execution_id], reason, now=now)


def settle(
    notification: Notification,
    state: NotificationState,
    now: datetime,
    *,
    error: str | None = None,
) -> None:
    notification.state = state.value
    notification.error = error
    notification.updated_at = now


def outgoing(
    notification: Notification,
    recipient: str,
    message: MIMEMultipart,
    *,
    token_hashes: tuple[str, ...] = (),
    expires_at: datetime | None = None,
) -> OutgoingEmail:
    """The claimed `notification` as the task hands it on: the attempt it is, and what
    `record_sent` / `record_failure` need to settle it without loading it again."""
    return OutgoingEmail(
        notification_id=notification.id,
        kind=NotificationKind(notification.kind),
        execution_id=notification.execution_id,
        attempt=notification.attempts,
        recipient=recipient,
        message=message,
        token_hashes=token_hashes,
        expires_at=expires_at,
    )
