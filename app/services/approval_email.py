"""The approval email's message (docs/operations.md, "The email links"): a text and an
HTML part with the totals, one line per recommendation, and the approve and cancel
links."""

from __future__ import annotations

from dataclasses import dataclass
from email.mime.multipart import MIMEMultipart

from flask import render_template

from app.config import Settings
from app.models import CloudAccount, PurchaseExecution
from app.services.email_message import compose
from app.services.purchase_summary import summarize


@dataclass(frozen=True)
class Links:
    approve: str
    cancel: str


def links_for(
    execution: PurchaseExecution, approve_token: str, cancel_token: str, settings: Settings
) -> Links:
    base = f"{settings.app_base_url}/purchases"
    return Links(
        approve=f"{base}/approve/{execution.execution_id}?token={approve_token}",
        cancel=f"{base}/cancel/{execution.execution_id}?token={cancel_token}",
    )


def render(
    execution: PurchaseExecution,
    account: CloudAccount | None,
    *,
    settings: Settings,
    recipient: str,
    links: Links,
) -> MIMEMultipart:
    """The message: a text and an HTML part with the totals, one line per
    recommendation, and the approve and cancel links."""
    summary = summarize(execution)
    context = {
        "execution": execution,
        "account": account,
        "lines": summary.lines,
        "upfront": summary.upfront,
        "savings": summary.savings,
        "links": links,
        "ttl_hours": settings.approval_token_ttl_hours,
    }
    count = len(summary.lines)
    return compose(
        f"Approval needed: {count} commitment purchase{'s' if count != 1 else ''}, "
        f"{summary.upfront} upfront",
        recipient=recipient,
        settings=settings,
        text=render_template("email/approval.txt", **context),
        html=render_template("email/approval.html", **context),
    )
