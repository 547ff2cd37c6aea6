"""The emails about an execution, through the outbox: owed, claimed, settled once.

Two kinds (`app.domain.outbox.NotificationKind`): the approval email (SPEC section 4),
owed with a pending successor, and the outcome email, owed in the transaction that
ends an execution. Recording the need in the transaction that creates it
(`owe_approval_email`, `owe_outcome_email`) means it is never lost. A task then claims
it (`claim_approval_email`, `claim_outcome_email`, both through `_claim`'s conditional
UPDATE, so no two tasks send it at once) and commits the claim, and an approval
email's link tokens, before it talks to the SMTP server, with no transaction (and no
SQLite write lock) held while it waits. `record_sent` or `record_failure` settles the
attempt: sent, failed for good, or queued again after a backoff, during which no other
task may claim it. Failing for good fails a pending execution, which cannot be
approved without its email; an ended execution is left as it is. Beat hands a
notification to a new task only when its task was lost or its worker died mid-send
(`app.domain.outbox`); that second task sends a second copy (an approval email's with
tokens of its own, so the links of every copy work).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.mime.multipart import MIMEMultipart

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import UTCDateTime
from app.domain.approvals import NO_APPROVER, ApprovalPolicy
from app.domain.outbox import (
    LOST_AFTER,
    SENDABLE_WHILE,
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
from app.services import approval_email, audit, outcome_email, transitions
from app.services.approvers import Approvers

FROM_EMAIL_MISSING = "FROM_EMAIL not configured for this deployment"
NO_OUTCOME_RECIPIENT = (
    "no recipient for the outcome email: the execution has no creator "
    "and the account no contact_email"
)
APPROVAL = NotificationKind.APPROVAL.value
OUTCOME = NotificationKind.OUTCOME.value


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


def new_token() -> tuple[str, str]:
    """A fresh link token (32 random bytes) and the hash that is all we store."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def owe_approval_email(session: Session, execution_id: uuid.UUID, *, now: datetime) -> None:
    """Record that `execution_id` needs its approval email (in the caller's transaction),
    due now by the worker's clock, the clock every claim compares against."""
    owe_approval_emails(session, [execution_id], now=now)


def owe_approval_emails(
    session: Session, execution_ids: Sequence[uuid.UUID], *, now: datetime
) -> None:
    """`owe_approval_email` for many executions, in one statement."""
    if execution_ids:
        session.execute(
            insert(Notification),
            [{"execution_id": id_, "kind": APPROVAL, "due_at": now} for id_ in execution_ids],
        )


def owe_outcome_email(session: Session, execution_id: uuid.UUID, *, now: datetime) -> None:
    """Record that the ended `execution_id` needs its outcome email (in the transaction
    that settles it)."""
    session.add(Notification(execution_id=execution_id, kind=OUTCOME, due_at=now))


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


def lost_emails(session: Session, *, now: datetime) -> list[tuple[NotificationKind, uuid.UUID]]:
    """Emails (kind, execution) with no task working on them: still queued `LOST_AFTER`
    past due, or claimed by a worker presumed dead."""
    rows = session.execute(
        select(Notification.kind, Notification.execution_id)
        .where(_claimable(now - LOST_AFTER))
        .order_by(Notification.due_at)
        .limit(1000)
    )
    return [(NotificationKind(kind), execution_id) for kind, execution_id in rows]


def _claim(
    session: Session, execution_ids: Sequence[uuid.UUID], kind: NotificationKind, *, now: datetime
) -> list[tuple[Notification, PurchaseExecution]]:
    """Claim the executions' emails of `kind` with one conditional UPDATE, so no two
    tasks send one at once. An email is left out when there is nothing to send now: no
    such notification, another task holds it or it waits for its backoff, it is settled,
    or the execution is past the point the email is about (settled `skipped`)."""
    if not execution_ids:
        return []
    claimed = session.scalars(
        update(Notification)
        .where(
            Notification.execution_id.in_(list(execution_ids)),
            Notification.kind == kind.value,
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
    ).all()
    if not claimed:
        return []
    executions = {
        execution.execution_id: execution
        for execution in session.scalars(
            select(PurchaseExecution)
            .where(PurchaseExecution.execution_id.in_([n.execution_id for n in claimed]))
            .execution_options(populate_existing=True)
        )
    }
    ready = []
    for notification in claimed:
        execution = executions.get(notification.execution_id)
        if execution is None or execution.status not in SENDABLE_WHILE[kind]:
            _settle(notification, NotificationState.SKIPPED, now)
        else:
            ready.append((notification, execution))
    return ready


@dataclass(frozen=True)
class IssuedLinks:
    links: approval_email.Links
    token_hashes: tuple[str, str]  # approve, cancel
    expires_at: datetime


def issue_links(
    session: Session,
    execution: PurchaseExecution,
    recipient: str,
    *,
    settings: Settings,
    now: datetime,
) -> IssuedLinks:
    """A fresh approve and a fresh cancel link for `execution`, valid for
    APPROVAL_TOKEN_TTL_HOURS; only their hashes are stored, each with the recipient,
    whom acting by the link names as the approver or canceller."""
    expires_at = now + timedelta(hours=settings.approval_token_ttl_hours)
    (approve, approve_hash), (cancel, cancel_hash) = new_token(), new_token()
    session.add_all(
        ApprovalToken(
            token_hash=token_hash,
            execution_id=execution.execution_id,
            action=action,
            recipient=recipient,
            expires_at=expires_at,
        )
        for action, token_hash in (("approve", approve_hash), ("cancel", cancel_hash))
    )
    return IssuedLinks(
        links=approval_email.links_for(execution, approve, cancel, settings),
        token_hashes=(approve_hash, cancel_hash),
        expires_at=expires_at,
    )


def claim_approval_email(
    session: Session, execution_id: uuid.UUID, *, settings: Settings, now: datetime
) -> list[OutgoingEmail]:
    """Claim the execution's approval email and prepare one message per recipient (each
    with its own links), or settle it at once.

    Empty when there is nothing to send now (see `_claim`), or when it cannot be sent:
    the execution fails with the reason (no FROM_EMAIL, malformed recommendations,
    nobody who may approve it).
    """
    return claim_approval_emails(session, [execution_id], settings=settings, now=now)


def claim_approval_emails(
    session: Session, execution_ids: Sequence[uuid.UUID], *, settings: Settings, now: datetime
) -> list[OutgoingEmail]:
    """`claim_approval_email` for many executions (a bulk retry's chunk), claimed in one
    statement; an execution's messages follow each other in the list."""
    emails: list[OutgoingEmail] = []
    approvers = Approvers(session)
    for notification, execution in _claim(
        session, execution_ids, NotificationKind.APPROVAL, now=now
    ):
        emails.extend(
            _prepare_approval_email(session, notification, execution, approvers, settings, now)
        )
    return emails


def _prepare_approval_email(
    session: Session,
    notification: Notification,
    execution: PurchaseExecution,
    approvers: Approvers,
    settings: Settings,
    now: datetime,
) -> list[OutgoingEmail]:
    account = execution.cloud_account
    policy = ApprovalPolicy(require_different_approver=settings.require_different_approver)
    recipients = approvers.recipients(execution, policy)
    problem = (
        FROM_EMAIL_MISSING
        if not settings.from_email
        else malformed_reason(execution.recommendations) or (None if recipients else NO_APPROVER)
    )
    if problem is not None:
        _give_up(session, notification, problem, now=now)
        return []
    emails = []
    for recipient in recipients:
        issued = issue_links(session, execution, recipient.email, settings=settings, now=now)
        message = approval_email.render(
            execution, account, settings=settings, recipient=recipient.email, links=issued.links
        )
        emails.append(
            _outgoing(
                notification,
                recipient.email,
                message,
                token_hashes=issued.token_hashes,
                expires_at=issued.expires_at,
            )
        )
    return emails


def claim_outcome_email(
    session: Session, execution_id: uuid.UUID, *, settings: Settings, now: datetime
) -> OutgoingEmail | None:
    """Claim the ended execution's outcome email and prepare it, or settle it at once.

    It goes to the creator, who started the purchase and waits to hear how it went,
    else the account's contact (the approval email asks the contact first: the contact
    decides). With no FROM_EMAIL or no recipient the email fails for good, with the
    reason in its `error` and the audit trail; the execution has ended and stays as it
    is.
    """
    claimed = _claim(session, [execution_id], NotificationKind.OUTCOME, now=now)
    if not claimed:
        return None
    notification, execution = claimed[0]
    account = execution.cloud_account
    recipient = _creator_email(session, execution) or _contact_email(account)
    problem = (
        FROM_EMAIL_MISSING
        if not settings.from_email
        else (NO_OUTCOME_RECIPIENT if recipient is None else None)
    )
    if problem is not None:
        _give_up(session, notification, problem, now=now)
        return None
    assert recipient is not None
    message = outcome_email.render(execution, account, settings=settings, recipient=recipient)
    return _outgoing(notification, recipient, message)


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
        return wait
    _give_up(session, notification, f"send failed: {failure.reply}", now=now)
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


def _give_up(session: Session, notification: Notification, reason: str, *, now: datetime) -> None:
    """The email will not be sent. Without its approval email a pending execution
    cannot be approved: it fails with `reason` (leaving `pending`, it loses its
    suppressions; its lineage stays). An ended execution stays as it is; the trail
    says why its outcome email never came."""
    _settle(notification, NotificationState.FAILED, now, error=reason)
    if notification.kind != APPROVAL:
        audit.record(
            session,
            f"{notification.kind}_email.failed",
            execution_id=notification.execution_id,
            details={"error": reason, "attempt": notification.attempts},
        )
        return
    transitions.fail_pending(session, [notification.execution_id], reason, now=now)


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


def _outgoing(
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


def approval_recipient(
    session: Session, execution: PurchaseExecution, settings: Settings
) -> str | None:
    """The first of those who may approve `execution` now (the demo's printed links go
    where its email would), or None when nobody may."""
    policy = ApprovalPolicy(require_different_approver=settings.require_different_approver)
    recipients = Approvers(session).recipients(execution, policy)
    return recipients[0].email if recipients else None


def _contact_email(account: CloudAccount | None) -> str | None:
    return account.contact_email if account is not None and account.contact_email else None


def _creator_email(session: Session, execution: PurchaseExecution) -> str | None:
    if execution.created_by_user_id is None:
        return None
    creator = session.get(User, execution.created_by_user_id)
    return creator.email if creator is not None else None
