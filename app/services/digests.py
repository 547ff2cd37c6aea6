"""A bulk retry's approval emails, and its outcome emails, as one digest per person.

A bulk retry owes an approval email per successor, as every retry does, in the
transaction that creates it (`notifications.owe_approval_emails(..., digest=batch_id)`);
those emails wait until the batch is settled (`digest_due`, asked by each chunk's task
after its commit, so the chunk that commits last always sees the rest). Then one task
claims them all (`claim_approval_digest`) and prepares, for each person who may approve
some of them, ONE message listing those rows with the totals: each row with its own
approve and cancel links (a token per action per row, as a single email has), and one
link to a page that lists them and approves the ones ticked (`DigestLink`; each row is
then approved through its own approve link's checks, `app.services.approvals`).

A digest lists at most `DIGEST_MAX_ROWS` rows; a person with more gets the next rows in
a further message. Each row's notification is settled as a single email's would be
(`app.services.deliveries`): sent when any recipient's server took a message listing
it, retried after a backoff otherwise (the retry is this digest's task again, for what
is still owed).

The rows' outcome emails are a digest too: a row of the batch that ends owes its
email in the batch's open window (`notifications.owe_outcome_email`), and the first
row still waiting in a window queues its digest for when it closes
(`outcome_window_to_queue`); `claim_outcome_digest` then sends each creator one message
listing the rows that ended meanwhile.
"""

from __future__ import annotations

import hmac
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from email.mime.multipart import MIMEMultipart

from flask import render_template
from sqlalchemy import exists, insert, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import unit_of_work, utcnow
from app.domain.errors import DomainError
from app.domain.inputs import is_text
from app.domain.outbox import NotificationKind, NotificationState
from app.domain.rbac import Action, Principal
from app.domain.retry import RequestState
from app.models import (
    ApprovalToken,
    DigestLink,
    Notification,
    PurchaseExecution,
    RetryBatchItem,
)
from app.services import approvals, channels
from app.services.approval_email import Links
from app.services.approvers import Approvers
from app.services.deliveries import OutgoingEmail, outgoing
from app.services.email_message import compose, details_url
from app.services.link_tokens import hash_token, issue_links_for_many, new_token
from app.services.notifications import approval_recipients, claim_where, outcome_recipient
from app.services.outcome_email import render_digest
from app.services.purchase_summary import money

# Rows per message: a digest stays a readable email of a few hundred kilobytes.
DIGEST_MAX_ROWS = 500
APPROVAL = NotificationKind.APPROVAL.value
OUTCOME = NotificationKind.OUTCOME.value


def digest_due(session: Session, batch_id: uuid.UUID) -> bool:
    """Is the bulk retry settled (no chunk item still queued) with approval emails
    waiting for its digest? Asked after each chunk's commit: the chunk that commits
    last sees every other one committed."""
    return bool(
        session.scalar(
            select(
                ~exists().where(
                    RetryBatchItem.batch_id == batch_id,
                    RetryBatchItem.state == RequestState.QUEUED.value,
                )
                & exists().where(
                    Notification.batch_id == batch_id,
                    Notification.kind == APPROVAL,
                    Notification.state == NotificationState.QUEUED.value,
                )
            )
        )
    )


@dataclass(frozen=True)
class DigestRow:
    execution: PurchaseExecution
    links: Links


def claim_approval_digest(
    session: Session, batch_id: uuid.UUID, *, owner: str, settings: Settings, now: datetime
) -> list[OutgoingEmail]:
    """Claim the batch's approval emails that are due and prepare the digests: one
    `OutgoingEmail` per (row, recipient), the rows of one recipient sharing one message.
    A row that cannot be sent is given up at once, as a single email would be."""
    claimed = claim_where(session, Notification.batch_id == batch_id, _KIND, owner=owner, now=now)
    if claimed:  # the channels hear of the batch once (owing twice is harmless)
        channels.owe_batch_approval_needed(
            session,
            batch_id,
            len(claimed),
            sum((execution.total_upfront_cost for _, execution in claimed), Decimal(0)),
            sum((execution.estimated_savings for _, execution in claimed), Decimal(0)),
            now,
        )
    approvers = Approvers(session)
    rows_of: dict[str, list[tuple[Notification, PurchaseExecution]]] = defaultdict(list)
    for notification, execution in claimed:
        for recipient in approval_recipients(
            session, notification, execution, approvers, settings=settings, now=now
        ):
            rows_of[recipient].append((notification, execution))
    emails: list[OutgoingEmail] = []
    for recipient, rows in rows_of.items():
        for start in range(0, len(rows), DIGEST_MAX_ROWS):
            part = rows[start : start + DIGEST_MAX_ROWS]
            emails += _digest(session, batch_id, recipient, part, settings=settings, now=now)
    return emails


_KIND = NotificationKind.APPROVAL


def _digest(
    session: Session,
    batch_id: uuid.UUID,
    recipient: str,
    rows: list[tuple[Notification, PurchaseExecution]],
    *,
    settings: Settings,
    now: datetime,
) -> list[OutgoingEmail]:
    issued = issue_links_for_many(
        session, [execution for _, execution in rows], recipient, settings=settings, now=now
    )
    page_token, page_hash = new_token()
    session.execute(
        insert(DigestLink),
        [
            {
                "token_hash": page_hash,
                "batch_id": batch_id,
                "recipient": recipient,
                "expires_at": now + timedelta(hours=settings.approval_token_ttl_hours),
            }
        ],
    )
    listed = zip(rows, issued, strict=True)
    message = render(
        [DigestRow(execution, links.links) for (_, execution), links in listed],
        recipient=recipient,
        page_url=f"{settings.app_base_url}/purchases/digest?token={page_token}",
        settings=settings,
    )
    return [
        outgoing(
            notification,
            recipient,
            message,
            token_hashes=links.token_hashes,
            expires_at=links.expires_at,
        )
        for (notification, _), links in zip(rows, issued, strict=True)
    ]


def render(
    rows: list[DigestRow], *, recipient: str, page_url: str, settings: Settings
) -> MIMEMultipart:
    """The digest: the totals, one line per row with its approve and cancel links, and
    the link to the page that approves the ones ticked."""
    upfront = sum((row.execution.total_upfront_cost for row in rows), Decimal(0))
    savings = sum((row.execution.estimated_savings for row in rows), Decimal(0))
    context = {
        "rows": rows,
        "count": len(rows),
        "upfront": money(upfront),
        "savings": money(savings),
        "money": money,
        "page_url": page_url,
        "details_url": lambda execution: details_url(settings, execution.execution_id),
        "ttl_hours": settings.approval_token_ttl_hours,
    }
    plural = "s" if len(rows) != 1 else ""
    return compose(
        f"Approval needed: {len(rows)} retried purchase{plural}, {money(upfront)} upfront",
        recipient=recipient,
        settings=settings,
        text=render_template("email/digest.txt", **context),
        html=render_template("email/digest.html", **context),
    )


# The outcome digest ------------------------------------------------------------------


def outcome_window_to_queue(
    session: Session, execution_id: uuid.UUID
) -> tuple[uuid.UUID, datetime] | None:
    """The batch and closing time of the outcome window the ended `execution_id`'s
    email waits in, when it is the first still waiting there: its task queues that
    window's digest, the others leave it be. None for an email that goes on its own,
    or is no longer waiting (a digest has taken it)."""
    mine = session.execute(
        select(Notification.batch_id, Notification.due_at).where(
            Notification.execution_id == execution_id,
            Notification.kind == OUTCOME,
            Notification.batch_id.is_not(None),
            Notification.state == NotificationState.QUEUED.value,
        )
    ).first()
    if mine is None or mine.batch_id is None:
        return None
    batch_id, due_at = mine.batch_id, mine.due_at
    first = session.scalar(
        select(Notification.execution_id)
        .where(
            Notification.batch_id == batch_id,
            Notification.kind == OUTCOME,
            Notification.state == NotificationState.QUEUED.value,
            Notification.due_at == due_at,
        )
        .order_by(Notification.created_at, Notification.id)
        .limit(1)
    )
    return (batch_id, due_at) if first == execution_id else None


def claim_outcome_digest(
    session: Session, batch_id: uuid.UUID, *, owner: str, settings: Settings, now: datetime
) -> list[OutgoingEmail]:
    """Claim the batch's outcome emails that are due and prepare one message per
    recipient (the row's creator, else its account's contact; `outcome_recipient`)
    listing their rows, at most `DIGEST_MAX_ROWS` to a message; the rows of one message
    share it, as an approval digest's do."""
    rows_of: dict[str, list[tuple[Notification, PurchaseExecution]]] = defaultdict(list)
    for notification, execution in claim_where(
        session, Notification.batch_id == batch_id, NotificationKind.OUTCOME, owner=owner, now=now
    ):
        recipient = outcome_recipient(session, notification, execution, settings=settings, now=now)
        if recipient is not None:
            rows_of[recipient].append((notification, execution))
    emails: list[OutgoingEmail] = []
    for recipient, rows in rows_of.items():
        for start in range(0, len(rows), DIGEST_MAX_ROWS):
            part = rows[start : start + DIGEST_MAX_ROWS]
            message = render_digest(
                [execution for _, execution in part], settings=settings, recipient=recipient
            )
            emails += [outgoing(notification, recipient, message) for notification, _ in part]
    return emails


# The digest's page: the rows it listed, and approving the ones ticked -----------------

INVALID_DIGEST = "this link is not valid: use the latest digest email for this retry"


def open_digest(session: Session, token: str | None, *, now: datetime) -> DigestLink:
    """The digest a page link opens; 403 for an unknown, tampered or expired link."""
    if not token or len(token) > 200 or not is_text(token):
        raise DomainError(403, INVALID_DIGEST)
    digest = hash_token(token)
    found = session.get(DigestLink, digest)
    if found is None or not hmac.compare_digest(found.token_hash, digest):
        raise DomainError(403, INVALID_DIGEST)
    if found.expires_at <= now:
        raise DomainError(403, "this link has expired: ask for a new purchase approval")
    return found


def digest_rows(session: Session, link: DigestLink) -> list[PurchaseExecution]:
    """The rows of the bulk retry that went to the link's recipient, oldest first, in
    whatever state they are now."""
    return list(
        session.scalars(
            select(PurchaseExecution)
            .where(
                PurchaseExecution.execution_id.in_(
                    select(Notification.execution_id).where(
                        Notification.batch_id == link.batch_id, Notification.kind == APPROVAL
                    )
                ),
                exists().where(
                    ApprovalToken.execution_id == PurchaseExecution.execution_id,
                    ApprovalToken.recipient == link.recipient,
                    ApprovalToken.action == Action.APPROVE.value,
                ),
            )
            .order_by(PurchaseExecution.created_at, PurchaseExecution.execution_id)
        )
    )


@dataclass(frozen=True)
class Decided:
    """What approving one ticked row did: its status now, or why it was refused."""

    execution_id: str
    status: str | None = None
    refusal: str | None = None


def approve_selected(
    token: str | None, raw_ids: Sequence[str], *, signed_in: Principal | None
) -> list[Decided]:
    """Approve the ticked rows of the digest `token` opens, each as a click on its own
    approve link would (`approvals.approve_from_digest`: the same checks, its own unit
    of work and audit), so one refusal leaves the others decided. A row that is not
    the digest's is refused without being looked at; nothing ticked is a 400."""
    with unit_of_work() as session:
        link = open_digest(session, token, now=utcnow())
        recipient = link.recipient
        listed = {str(execution.execution_id) for execution in digest_rows(session, link)}
    ticked = list(dict.fromkeys(raw_ids))
    if not ticked:
        raise DomainError(400, "tick at least one purchase to approve")
    if len(ticked) > DIGEST_MAX_ROWS:
        raise DomainError(400, f"at most {DIGEST_MAX_ROWS} purchases at once")
    decided = []
    for raw_id in ticked:
        if raw_id not in listed:
            decided.append(Decided(raw_id[:64], refusal="not a purchase of this digest"))
            continue
        try:
            execution = approvals.approve_from_digest(raw_id, recipient, signed_in=signed_in)
        except DomainError as refusal:
            decided.append(Decided(raw_id, refusal=refusal.message))
        else:
            decided.append(Decided(raw_id, status=execution.status))
    return decided
