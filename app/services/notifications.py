"""The approval email (SPEC section 4), through the outbox: owed, claimed, settled once.

The need for an email is recorded in the transaction that creates it (`owe_approval_email`,
by the retry's writes), so it is never lost. A task then `claim`s it with a conditional
UPDATE, so no two tasks send it at once, and commits the claim and the links' tokens
before it talks to the SMTP server, with no transaction (and no SQLite write lock) held
while it waits. `record_sent` or `record_failure` settles the attempt: sent, failed for
good (the execution fails with the reason), or queued again after a backoff, during
which no other task may claim it. Beat hands a notification to a new task only when its
task was lost or its worker died mid-send (`app.domain.outbox`); that second task sends
a second copy with tokens of its own, so the links of every copy work.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.mime.multipart import MIMEMultipart

from sqlalchemy import ColumnElement, and_, delete, exists, func, literal, or_, select, update
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import UTCDateTime
from app.domain.outbox import (
    LOST_AFTER,
    SENDING_STALE_AFTER,
    NotificationKind,
    NotificationState,
    backoff_seconds,
    gives_up,
)
from app.domain.recommendations import malformed_reason
from app.domain.statuses import Status
from app.mail import SendFailure
from app.models import (
    ApprovalToken,
    CloudAccount,
    Notification,
    PurchaseExecution,
    User,
)
from app.services import approval_email, audit, transitions

FROM_EMAIL_MISSING = "FROM_EMAIL not configured for this deployment"
NO_RECIPIENT = (
    "no recipient for the approval email: the account has no contact_email "
    "and the execution no creator"
)
APPROVAL = NotificationKind.APPROVAL.value


@dataclass(frozen=True)
class OutgoingEmail:
    """A claimed approval email, ready to hand to the SMTP server."""

    notification_id: uuid.UUID
    execution_id: uuid.UUID
    attempt: int
    recipient: str
    message: MIMEMultipart
    token_hashes: tuple[str, ...]  # approve, cancel
    expires_at: datetime


def new_token() -> tuple[str, str]:
    """A fresh link token (32 random bytes) and the hash that is all we store."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def owe_approval_email(session: Session, execution_id: uuid.UUID, *, now: datetime) -> None:
    """Record that `execution_id` needs its approval email (in the caller's transaction),
    due now by the worker's clock, the clock every claim compares against."""
    session.add(Notification(execution_id=execution_id, kind=APPROVAL, due_at=now))


def owe_missing_approval_emails(
    session: Session, *, now: datetime, after: timedelta
) -> list[uuid.UUID]:
    """Record the need for pending rows older than `after` that have none: rows
    inserted by hand, or written before the outbox existed. Returns their ids."""
    missing = session.scalars(
        select(PurchaseExecution.execution_id)
        .where(
            PurchaseExecution.status == Status.PENDING.value,
            PurchaseExecution.notification_sent_at.is_(None),
            PurchaseExecution.created_at < now - after,
            ~exists().where(
                Notification.execution_id == PurchaseExecution.execution_id,
                Notification.kind == APPROVAL,
            ),
        )
        .limit(1000)
    ).all()
    for execution_id in missing:
        owe_approval_email(session, execution_id, now=now)
    session.flush()
    return list(missing)


def _claimable(now: datetime) -> ColumnElement[bool]:
    """Queued and due, or claimed by a worker presumed dead."""
    return or_(
        and_(Notification.state == NotificationState.QUEUED.value, Notification.due_at <= now),
        and_(
            Notification.state == NotificationState.SENDING.value,
            Notification.claimed_at < now - SENDING_STALE_AFTER,
        ),
    )


def lost_approval_emails(session: Session, *, now: datetime) -> list[uuid.UUID]:
    """Executions whose approval email has no task working on it: still queued
    `LOST_AFTER` past due, or claimed by a worker presumed dead."""
    return list(
        session.scalars(
            select(Notification.execution_id)
            .where(Notification.kind == APPROVAL, _claimable(now - LOST_AFTER))
            .order_by(Notification.due_at)
            .limit(1000)
        )
    )


def claim_approval_email(
    session: Session, execution_id: uuid.UUID, *, settings: Settings, now: datetime
) -> OutgoingEmail | None:
    """Claim the execution's approval email and prepare it, or settle it at once.

    None when there is nothing to send now: no such notification, another task holds
    it or it waits for its backoff, it is settled, the execution is no longer pending
    (skipped), or it cannot be sent (the execution fails with the reason: no
    FROM_EMAIL, malformed recommendations, no recipient).
    """
    notification = session.scalars(
        update(Notification)
        .where(
            Notification.execution_id == execution_id,
            Notification.kind == APPROVAL,
            _claimable(now),
        )
        .values(
            state=NotificationState.SENDING.value,
            attempts=Notification.attempts + 1,
            claimed_at=now,
            updated_at=now,
        )
        .returning(Notification)
        .execution_options(populate_existing=True, synchronize_session=False)
    ).one_or_none()
    if notification is None:
        return None
    execution = session.get(PurchaseExecution, execution_id, populate_existing=True)
    if execution is None or execution.status != Status.PENDING:
        _settle(notification, NotificationState.SKIPPED, now)
        return None
    account = execution.cloud_account
    recipient = _recipient(session, execution, account)
    problem = (
        FROM_EMAIL_MISSING
        if not settings.from_email
        else malformed_reason(execution.recommendations)
        or (NO_RECIPIENT if recipient is None else None)
    )
    if problem is not None:
        _fail(session, notification, problem, now=now)
        return None
    assert recipient is not None
    expires_at = now + timedelta(hours=settings.approval_token_ttl_hours)
    approve, approve_hash = new_token()
    cancel, cancel_hash = new_token()
    session.add_all(
        [
            ApprovalToken(
                token_hash=approve_hash,
                execution_id=execution_id,
                action="approve",
                expires_at=expires_at,
            ),
            ApprovalToken(
                token_hash=cancel_hash,
                execution_id=execution_id,
                action="cancel",
                expires_at=expires_at,
            ),
        ]
    )
    message = approval_email.render(
        execution,
        account,
        settings=settings,
        recipient=recipient,
        links=approval_email.links_for(execution, approve, cancel, settings),
    )
    return OutgoingEmail(
        notification_id=notification.id,
        execution_id=execution_id,
        attempt=notification.attempts,
        recipient=recipient,
        message=message,
        token_hashes=(approve_hash, cancel_hash),
        expires_at=expires_at,
    )


def record_sent(session: Session, email: OutgoingEmail, *, now: datetime) -> None:
    """The SMTP server accepted the message: the notification is sent, and the
    execution says when (the first copy) and which approve link is the latest."""
    session.execute(
        update(Notification)
        .where(Notification.id == email.notification_id)
        .values(state=NotificationState.SENT.value, sent_at=now, error=None, updated_at=now)
    )
    session.execute(
        update(PurchaseExecution)
        .where(PurchaseExecution.execution_id == email.execution_id)
        .values(
            notification_sent_at=func.coalesce(
                PurchaseExecution.notification_sent_at, literal(now, UTCDateTime())
            ),
            approval_token_hash=email.token_hashes[0],
            approval_token_expires_at=email.expires_at,
        )
    )
    audit.record(
        session,
        "approval_email.sent",
        execution_id=email.execution_id,
        details={
            "to": email.recipient,
            "message_id": email.message["Message-ID"],
            "attempt": email.attempt,
        },
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
    (`EMAIL_MAX_RETRIES`). The execution then fails with `send failed: <reply>`.
    """
    session.execute(delete(ApprovalToken).where(ApprovalToken.token_hash.in_(email.token_hashes)))
    notification = session.get(Notification, email.notification_id, populate_existing=True)
    assert notification is not None
    if not failure.permanent and not gives_up(email.attempt, settings.email_max_retries):
        wait = backoff_seconds(email.attempt - 1, base=settings.email_retry_base_seconds)
        notification.state = NotificationState.QUEUED.value
        notification.due_at = now + timedelta(seconds=wait)
        notification.error = failure.reply
        notification.updated_at = now
        return wait
    _fail(session, notification, f"send failed: {failure.reply}", now=now)
    return None


def _fail(session: Session, notification: Notification, reason: str, *, now: datetime) -> None:
    """The email will not be sent: the execution fails with `reason` (leaving `pending`,
    it loses its suppressions; its lineage stays)."""
    _settle(notification, NotificationState.FAILED, now, error=reason)
    transitions.move(
        session,
        PurchaseExecution.execution_id == notification.execution_id,
        sources={Status.PENDING},
        target=Status.FAILED,
        now=now,
        action="execution.failed",
        details={"error": reason},
        values={"error": reason},
    )


def _settle(
    notification: Notification,
    state: NotificationState,
    now: datetime,
    *,
    error: str | None = None,
) -> None:
    notification.state = state.value
    notification.error = error
    notification.updated_at = now


def token_opens(
    session: Session, execution_id: uuid.UUID, action: str, token: str, *, now: datetime
) -> bool:
    """Whether `token` is a live link of some copy of the execution's email for `action`.

    Looked up by its hash (the index makes the comparison one of equal digests, not of
    secrets); unknown, expired, used, another action's or another row's token is not.
    """
    found = session.get(ApprovalToken, hash_token(token))
    return (
        found is not None
        and found.execution_id == execution_id
        and found.action == action
        and found.used_at is None
        and found.expires_at > now
    )


def _recipient(
    session: Session, execution: PurchaseExecution, account: CloudAccount | None
) -> str | None:
    if account is not None and account.contact_email:
        return account.contact_email
    if execution.created_by_user_id is not None:
        creator = session.get(User, execution.created_by_user_id)
        if creator is not None:
            return creator.email
    return None
