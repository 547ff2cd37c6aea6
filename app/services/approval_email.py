"""The approval email's message (SPEC section 4): a text and an HTML part with the
totals, one line per recommendation, and the approve and cancel links."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import make_msgid
from typing import Any

from flask import render_template

from app.config import Settings
from app.models import CloudAccount, PurchaseExecution


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
