"""The approval email (SPEC section 4): sent once per execution, or the execution fails.

`send_approval_email` runs in the task's unit of work. It locks the execution row, so
two deliveries of the task cannot both send; it sends while holding the lock and marks
`notification_sent_at` in the same transaction, so a message is never recorded as sent
unless the SMTP server accepted it. (If the process dies between the server's accept
and the commit, the redelivered task sends again: at least once, never zero.)
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import make_msgid
from typing import Any

from flask import render_template
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.domain.statuses import Status
from app.mail import SendFailure, send_message
from app.models import CloudAccount, PurchaseExecution, PurchaseSuppression, User
from app.services import audit

FROM_EMAIL_MISSING = "FROM_EMAIL not configured for this deployment"


class TransientSendFailure(Exception):
    """SMTP failed in a way worth retrying; nothing was recorded."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


@dataclass(frozen=True)
class Links:
    approve: str
    cancel: str


def new_token() -> tuple[str, str]:
    """A fresh approval token (32 random bytes) and the hash that is all we store."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def send_approval_email(
    session: Session,
    execution_id: Any,
    *,
    settings: Settings,
    now: datetime,
    final_attempt: bool,
) -> str:
    """Send the execution's approval email once; returns what happened, in a word.

    `sent`, `skipped` (already sent, or no longer pending) or `failed` (the execution
    is now `failed` with the reason). A transient SMTP failure raises
    `TransientSendFailure` (nothing written) unless this is the `final_attempt`, when
    it fails the execution with `send failed: <reply>` instead.
    """
    execution = session.scalars(
        select(PurchaseExecution)
        .where(PurchaseExecution.execution_id == execution_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if execution is None or execution.notification_sent_at is not None:
        return "skipped"
    if execution.status != Status.PENDING:
        return "skipped"
    if not settings.from_email:
        fail_pending(session, execution, FROM_EMAIL_MISSING, now=now)
        return "failed"
    account = (
        session.get(CloudAccount, execution.cloud_account_id)
        if execution.cloud_account_id
        else None
    )
    recipient = _recipient(session, execution, account)
    if recipient is None:
        fail_pending(
            session,
            execution,
            "no recipient for the approval email: the account has no contact_email "
            "and the execution no creator",
            now=now,
        )
        return "failed"

    token, token_hash = new_token()
    message = render_approval_email(
        execution,
        account,
        settings=settings,
        recipient=recipient,
        links=links_for(execution, token, settings),
    )
    try:
        send_message(settings, message)
    except SendFailure as failure:
        if not failure.permanent and not final_attempt:
            raise TransientSendFailure(failure.reply) from failure
        fail_pending(session, execution, f"send failed: {failure.reply}", now=now)
        return "failed"
    execution.approval_token_hash = token_hash
    execution.approval_token_expires_at = now + timedelta(hours=settings.approval_token_ttl_hours)
    execution.notification_sent_at = now
    audit.record(
        session,
        "approval_email.sent",
        execution_id=execution.execution_id,
        details={"to": recipient, "message_id": message["Message-ID"]},
    )
    return "sent"


def fail_pending(
    session: Session, execution: PurchaseExecution, reason: str, *, now: datetime
) -> None:
    """`pending` → `failed` with `reason`. Nothing is in flight any more, so the
    execution's suppressions go too. Its lineage is untouched."""
    execution.status = Status.FAILED.value
    execution.error = reason
    execution.updated_at = now
    session.execute(
        delete(PurchaseSuppression).where(
            PurchaseSuppression.execution_id == execution.execution_id
        )
    )
    audit.record(
        session, "execution.failed", execution_id=execution.execution_id, details={"error": reason}
    )


def links_for(execution: PurchaseExecution, token: str, settings: Settings) -> Links:
    base = f"{settings.app_base_url}/purchases"
    return Links(
        approve=f"{base}/approve/{execution.execution_id}?token={token}",
        cancel=f"{base}/cancel/{execution.execution_id}?token={token}",
    )


def render_approval_email(
    execution: PurchaseExecution,
    account: CloudAccount | None,
    *,
    settings: Settings,
    recipient: str,
    links: Links,
) -> MIMEMultipart:
    """The message: a text and an HTML part with the totals, one line per
    recommendation, and the approve and cancel links."""
    context = {
        "execution": execution,
        "account": account,
        "lines": [_line(item) for item in execution.recommendations],
        "upfront": _money(execution.total_upfront_cost),
        "savings": _money(execution.estimated_savings),
        "links": links,
        "ttl_hours": settings.approval_token_ttl_hours,
    }
    # email.mime with the compat32 policy: EmailMessage's default policy parses and
    # refolds every header, which cost more CPU than the rest of the task.
    message = MIMEMultipart("alternative")
    count = len(execution.recommendations)
    subject = (
        f"Approval needed: {count} commitment purchase{'s' if count != 1 else ''}, "
        f"{context['upfront']} upfront"
    )
    message["Subject"] = subject if subject.isascii() else Header(subject, "utf-8")
    message["From"] = settings.from_email
    message["To"] = recipient
    domain = (settings.from_email or "").rpartition("@")[2] or None
    message["Message-ID"] = make_msgid(domain=domain)
    message.attach(MIMEText(render_template("email/approval.txt", **context), "plain", "utf-8"))
    message.attach(MIMEText(render_template("email/approval.html", **context), "html", "utf-8"))
    return message


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


def _line(item: dict[str, Any]) -> dict[str, str]:
    engine = f" ({item['engine']})" if item.get("engine") else ""
    return {
        "what": f"{item.get('provider', '?')} {item.get('service', '?')} "
        f"{item.get('resource_type', '?')}{engine}",
        "where": f"{item.get('region', '?')}, account {item.get('account_id', '?')}",
        "count": str(item.get("count", "?")),
        "term": f"{item.get('term_years', '?')}y {item.get('payment_option', '')}".strip(),
        "upfront": _money(item.get("upfront_cost")),
        "monthly_savings": _money(item.get("monthly_savings")),
        "selected": "yes" if item.get("selected", True) else "no",
    }


def _money(value: Any) -> str:
    try:
        return f"${Decimal(str(value)):,.2f}"
    except (ArithmeticError, ValueError):
        return "$?"
