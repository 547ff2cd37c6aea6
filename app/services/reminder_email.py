"""The reminder's message: a scheduled execution starts soon. It says what will be
bought (one line per selected recommendation), the money (`app.domain.spending`'s
totals: upfront, monthly, over the term, estimated savings), when it starts, what must
still happen first (a pending row needs its approval; a freeze or a paused plan holds
it), and links to the execution in the panel."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from email.mime.multipart import MIMEMultipart

from flask import render_template

from app.config import Settings
from app.domain.purchasing import is_selected
from app.domain.recommendations import items_of
from app.domain.spending import totals_of
from app.domain.statuses import Status
from app.models import CloudAccount, PurchaseExecution
from app.services.email_message import compose, details_url
from app.services.purchase_summary import line_of, money

TIME_FORMAT = "%Y-%m-%d %H:%M UTC"


def when_text(moment: datetime) -> str:
    """A time as the reminder writes it: to the minute, in UTC."""
    return moment.strftime(TIME_FORMAT)


def lead_text(lead: timedelta) -> str:
    """How long until the start, in words: "in 23 hours 5 minutes", "in 4 minutes"."""
    minutes = max(0, int(lead.total_seconds() // 60))
    hours, minutes = divmod(minutes, 60)
    parts = [f"{hours} hour{'s' if hours != 1 else ''}"] if hours else []
    if minutes or not hours:
        parts.append(f"{minutes} minute{'s' if minutes != 1 else ''}")
    return "in " + " ".join(parts)


def render(
    execution: PurchaseExecution,
    account: CloudAccount | None,
    *,
    settings: Settings,
    recipient: str,
    now: datetime,
    holds: Sequence[str] = (),
) -> MIMEMultipart:
    """The message: a text and an HTML part with the start time, the totals, one line
    per selected recommendation, what must still happen (`holds`: a freeze, a paused
    plan) and the panel's detail page. The subject alone names the time and the money
    over the term, so the inbox tells which reminder is about what."""
    assert execution.scheduled_for is not None  # only scheduled rows are reminded
    totals = totals_of(execution.recommendations)
    when = when_text(execution.scheduled_for)
    commitments = f"{totals.items} commitment{'s' if totals.items != 1 else ''}"
    pending = execution.status == Status.PENDING
    subject = (
        f"Scheduled purchase at {when}: {commitments}, {money(totals.term_total)} over the term"
    )
    if pending:
        subject += ", awaiting approval"
    context = {
        "execution": execution,
        "account": account,
        "when": when,
        "lead": lead_text(execution.scheduled_for - now),
        "pending": pending,
        "holds": list(holds),
        "lines": [
            line_of(item) for item in items_of(execution.recommendations) if is_selected(item)
        ],
        "commitments": commitments,
        "upfront": money(totals.upfront),
        "monthly": money(totals.monthly),
        "term_total": money(totals.term_total),
        "yearly_savings": money(totals.yearly_savings),
        "details_url": details_url(settings, execution.execution_id),
    }
    return compose(
        subject,
        recipient=recipient,
        settings=settings,
        text=render_template("email/reminder.txt", **context),
        html=render_template("email/reminder.html", **context),
    )
