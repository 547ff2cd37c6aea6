"""The emails about an execution, through the outbox: owed, then claimed by one task.

Two kinds (`app.domain.outbox.NotificationKind`): the approval email,
owed with a pending successor, and the outcome email, owed in the transaction that
ends an execution. Recording the need in the transaction that creates it
(`owe_approval_email`, `owe_outcome_email`) means it is never lost. A task then claims
it (`claim_approval_email`, `claim_outcome_email`, both through `_claim`'s conditional
UPDATE, so no two tasks send it at once) and commits the claim, and an approval
email's link tokens (`app.services.link_tokens`), before it talks to the SMTP server,
with no transaction (and no SQLite write lock) held while it waits. What happened is
then settled once by `app.services.deliveries`. A claim is a lease
(`app.services.leases`) the sending worker's heartbeat renews; the sweep hands a
notification to a new task only when its task was lost or its worker died mid-send
(`lapsed_emails`); that second task sends a second copy (an approval email's with
tokens of its own, so the links of every copy work).

A third kind, the reminder before a scheduled execution starts, has its own module
(`app.services.reminders`) and is claimed through the same `claim_where`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    and_,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from app.config import Settings, get_settings
from app.domain.approvals import NO_APPROVER, ApprovalPolicy
from app.domain.outbox import SENDABLE_WHILE, NotificationKind, NotificationState
from app.domain.recommendations import malformed_reason
from app.domain.staleness import UNSTARTED_AFTER
from app.domain.statuses import Status
from app.models import (
    Notification,
    PurchaseExecution,
    User,
)
from app.services import (
    approval_email,
    channels,
    leases,
    outcome_email,
)
from app.services.approvers import Approvers
from app.services.deliveries import OutgoingEmail, give_up, outgoing, settle
from app.services.link_tokens import issue_links

FROM_EMAIL_MISSING = "FROM_EMAIL not configured for this deployment"
NO_OUTCOME_RECIPIENT = (
    "no recipient for the outcome email: the execution has no creator "
    "and the account no contact_email"
)
APPROVAL = NotificationKind.APPROVAL.value
OUTCOME = NotificationKind.OUTCOME.value


def owe_approval_email(session: Session, execution_id: uuid.UUID, *, now: datetime) -> None:
    """Record that `execution_id` needs its approval email (in the caller's transaction),
    due now by the worker's clock, the clock every claim compares against."""
    owe_approval_emails(session, [execution_id], now=now)


def owe_approval_emails(
    session: Session,
    execution_ids: Sequence[uuid.UUID],
    *,
    now: datetime,
    digest: uuid.UUID | None = None,
) -> None:
    """`owe_approval_email` for many executions, in one statement. With `digest` (a
    bulk retry's batch id) they go out together, one email per person, once the batch
    is settled (`app.services.digests`)."""
    if execution_ids:
        session.execute(
            insert(Notification),
            [
                {"execution_id": id_, "kind": APPROVAL, "due_at": now, "batch_id": digest}
                for id_ in execution_ids
            ],
        )
    if digest is None:  # a bulk retry's batch: one message, `owe_batch_approval_needed`
        channels.owe_approval_needed(session, execution_ids, now=now)


def owe_outcome_email(session: Session, execution_id: uuid.UUID, *, now: datetime) -> None:
    """Record that the ended `execution_id` needs its outcome email (in the transaction
    that settles it).

    A row of a bulk retry (its approval email went in the batch's digest) joins the
    batch's outcome digest (`app.services.digests`): its email waits until the open
    window of that batch closes, or opens one `OUTCOME_DIGEST_SECONDS` long, so the rows
    that end meanwhile reach each creator as one message."""
    batch_id = session.scalar(
        select(Notification.batch_id).where(
            Notification.execution_id == execution_id,
            Notification.kind == APPROVAL,
            Notification.batch_id.is_not(None),
        )
    )
    due_at = now if batch_id is None else _outcome_window(session, batch_id, now)
    session.add(
        Notification(execution_id=execution_id, kind=OUTCOME, due_at=due_at, batch_id=batch_id)
    )
    channels.owe_outcome(session, execution_id, now=now)


def _outcome_window(session: Session, batch_id: uuid.UUID, now: datetime) -> datetime:
    """When the batch's open outcome window closes: that of an outcome email still
    waiting in it, else a new one from now."""
    open_until = session.scalar(
        select(func.min(Notification.due_at)).where(
            Notification.batch_id == batch_id,
            Notification.kind == OUTCOME,
            Notification.state == NotificationState.QUEUED.value,
            Notification.due_at > now,
        )
    )
    return open_until or now + timedelta(seconds=get_settings().outcome_digest_seconds)


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


def lapsed_emails(
    session: Session, *, now: datetime
) -> list[tuple[NotificationKind, uuid.UUID, uuid.UUID | None]]:
    """Emails (kind, execution, digest batch or None) no task is working on, handed back
    to the broker: a claim whose lease lapsed (its worker died mid-send: it goes out
    again), and one queued `UNSTARTED_AFTER` past due whose message the broker lost."""
    dead_sender = and_(
        Notification.state == NotificationState.SENDING.value,
        Notification.lease_expires_at < now,
    )
    lost_message = and_(
        Notification.state == NotificationState.QUEUED.value,
        Notification.due_at < now - UNSTARTED_AFTER,
        leases.lapsed(Notification, now),
    )
    rows = session.execute(
        update(Notification)
        .where(or_(dead_sender, lost_message))
        .values(state=NotificationState.QUEUED.value, updated_at=now, **leases.in_broker(now))
        .returning(Notification.kind, Notification.execution_id, Notification.batch_id)
        .execution_options(synchronize_session=False)
    )
    return [(NotificationKind(kind), execution_id, batch) for kind, execution_id, batch in rows]


def _claim(
    session: Session,
    execution_ids: Sequence[uuid.UUID],
    kind: NotificationKind,
    *,
    owner: str,
    now: datetime,
) -> list[tuple[Notification, PurchaseExecution]]:
    """Claim the executions' emails of `kind` that go on their own (not in a digest)."""
    if not execution_ids:
        return []
    return claim_where(
        session,
        and_(Notification.execution_id.in_(list(execution_ids)), Notification.batch_id.is_(None)),
        kind,
        owner=owner,
        now=now,
    )


def claim_where(
    session: Session,
    which: ColumnElement[bool],
    kind: NotificationKind,
    *,
    owner: str,
    now: datetime,
) -> list[tuple[Notification, PurchaseExecution]]:
    """Claim the emails of `kind` that `which` picks for `owner` with one conditional
    UPDATE, under a lease, so no two tasks send one at once. An email is left out when
    there is nothing to send now: another live task holds it or it waits for its
    backoff, it is settled, or the execution is past the point the email is about
    (settled `skipped`)."""
    claimed = session.scalars(
        update(Notification)
        .where(
            which,
            Notification.kind == kind.value,
            or_(
                and_(
                    Notification.state == NotificationState.QUEUED.value,
                    Notification.due_at <= now,
                ),
                Notification.state == NotificationState.SENDING.value,
            ),
            leases.available(Notification, owner, now),
        )
        .values(
            state=NotificationState.SENDING.value,
            attempts=Notification.attempts + 1,
            claimed_at=now,
            updated_at=now,
            **leases.held_by(owner, now),
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
            settle(notification, NotificationState.SKIPPED, now)
        else:
            ready.append((notification, execution))
    return ready


def claim_approval_email(
    session: Session, execution_id: uuid.UUID, *, owner: str, settings: Settings, now: datetime
) -> list[OutgoingEmail]:
    """Claim the execution's approval email and prepare one message per recipient (each
    with its own links), or settle it at once.

    Empty when there is nothing to send now (see `_claim`), or when it cannot be sent:
    the execution fails with the reason (no FROM_EMAIL, malformed recommendations,
    nobody who may approve it).
    """
    return claim_approval_emails(session, [execution_id], owner=owner, settings=settings, now=now)


def claim_approval_emails(
    session: Session,
    execution_ids: Sequence[uuid.UUID],
    *,
    owner: str,
    settings: Settings,
    now: datetime,
) -> list[OutgoingEmail]:
    """`claim_approval_email` for many executions (a bulk retry's chunk), claimed in one
    statement; an execution's messages follow each other in the list."""
    emails: list[OutgoingEmail] = []
    approvers = Approvers(session)
    for notification, execution in _claim(
        session, execution_ids, NotificationKind.APPROVAL, owner=owner, now=now
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
    emails = []
    for recipient in approval_recipients(
        session, notification, execution, approvers, settings=settings, now=now
    ):
        issued = issue_links(session, execution, recipient, settings=settings, now=now)
        message = approval_email.render(
            execution, account, settings=settings, recipient=recipient, links=issued.links
        )
        emails.append(
            outgoing(
                notification,
                recipient,
                message,
                token_hashes=issued.token_hashes,
                expires_at=issued.expires_at,
            )
        )
    return emails


def approval_recipients(
    session: Session,
    notification: Notification,
    execution: PurchaseExecution,
    approvers: Approvers,
    *,
    settings: Settings,
    now: datetime,
) -> list[str]:
    """Who the claimed approval email goes to; none when it cannot be sent, which
    gives it up (the execution fails with the reason: no FROM_EMAIL, malformed
    recommendations, nobody who may approve it)."""
    policy = ApprovalPolicy(require_different_approver=settings.require_different_approver)
    recipients = approvers.recipients(execution, policy)
    problem = (
        FROM_EMAIL_MISSING
        if not settings.from_email
        else malformed_reason(execution.recommendations) or (None if recipients else NO_APPROVER)
    )
    if problem is not None:
        give_up(session, notification, problem, now=now)
        return []
    return [recipient.email for recipient in recipients]


def claim_outcome_email(
    session: Session, execution_id: uuid.UUID, *, owner: str, settings: Settings, now: datetime
) -> OutgoingEmail | None:
    """Claim the ended execution's outcome email and prepare it, or settle it at once.

    It goes to the creator, who started the purchase and waits to hear how it went,
    else the account's contact (the approval email asks the contact first: the contact
    decides). With no FROM_EMAIL or no recipient the email fails for good, with the
    reason in its `error` and the audit trail; the execution has ended and stays as it
    is.
    """
    claimed = _claim(session, [execution_id], NotificationKind.OUTCOME, owner=owner, now=now)
    if not claimed:
        return None
    notification, execution = claimed[0]
    recipient = outcome_recipient(session, notification, execution, settings=settings, now=now)
    if recipient is None:
        return None
    account = execution.cloud_account
    message = outcome_email.render(execution, account, settings=settings, recipient=recipient)
    return outgoing(notification, recipient, message)


def outcome_recipient(
    session: Session,
    notification: Notification,
    execution: PurchaseExecution,
    *,
    settings: Settings,
    now: datetime,
) -> str | None:
    """Who the claimed outcome email goes to: the creator, else the account's contact.
    None when it cannot be sent, which gives it up (no FROM_EMAIL, no recipient)."""
    account = execution.cloud_account
    recipient = _creator_email(session, execution) or (account and account.contact_email) or None
    problem = (
        FROM_EMAIL_MISSING
        if not settings.from_email
        else (NO_OUTCOME_RECIPIENT if recipient is None else None)
    )
    if problem is not None:
        give_up(session, notification, problem, now=now)
        return None
    return recipient


def _creator_email(session: Session, execution: PurchaseExecution) -> str | None:
    if execution.created_by_user_id is None:
        return None
    creator = session.get(User, execution.created_by_user_id)
    return creator.email if creator is not None else None
