"""The outcome email's message: how an execution ended, item by item (purchased with its
purchase id, failed with the provider's reason, or skipped), with the totals and a link
to the execution in the panel. The executor's per-item fields say it all (`purchased`,
`purchase_id`, `error`, `selected`), so the message reads the row and nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from email.mime.multipart import MIMEMultipart
from typing import Any

from flask import render_template

from app.config import Settings
from app.domain.providers import PurchaseMode, mode_meaning
from app.domain.purchasing import is_selected, item_outcome, quote_text
from app.domain.recommendations import items_of
from app.domain.statuses import Status
from app.models import CloudAccount, PurchaseExecution
from app.services.email_message import compose, details_url
from app.services.purchase_summary import Line, line_of, summarize

HEADLINES = {
    Status.COMPLETED: "Purchase completed",
    Status.PARTIALLY_COMPLETED: "Purchase partially completed",
    Status.FAILED: "Purchase failed",
}

PURCHASED = "purchased"
QUOTED = "would buy (dry run)"
FAILED = "failed"
SKIPPED = "skipped"
NOT_PURCHASED = "not purchased"


@dataclass(frozen=True)
class ItemOutcome:
    line: Line
    outcome: str  # PURCHASED | QUOTED | FAILED | SKIPPED | NOT_PURCHASED
    detail: str  # the purchase id, or why not


def outcome_of(item: dict[str, Any]) -> ItemOutcome:
    """What became of one recommendation. A selected item with neither a purchase nor
    an error was never reached: the run broke off (reaped, or the worker failed)."""
    if not is_selected(item):
        return ItemOutcome(line_of(item), SKIPPED, "not selected")
    if item.get("purchased"):
        return ItemOutcome(line_of(item), PURCHASED, str(item.get("purchase_id") or ""))
    if item.get("error"):
        return ItemOutcome(line_of(item), FAILED, str(item["error"]))
    if item_outcome(item) == "quoted":
        return ItemOutcome(line_of(item), QUOTED, quote_text(item["quote"]))
    return ItemOutcome(line_of(item), NOT_PURCHASED, "the run stopped before this item")


def render(
    execution: PurchaseExecution,
    account: CloudAccount | None,
    *,
    settings: Settings,
    recipient: str,
) -> MIMEMultipart:
    """The message: a text and an HTML part with the status and the row's error, the
    totals, one line per recommendation with its outcome, and the panel's detail page.
    The subject counts what was bought of what was selected, so the inbox alone tells
    a complete purchase from a partial one."""
    summary = summarize(execution)
    items = [outcome_of(item) for item in items_of(execution.recommendations)]
    selected = [item for item in items if item.outcome != SKIPPED]
    purchased = sum(item.outcome == PURCHASED for item in items)
    headline = HEADLINES.get(Status(execution.status), f"Purchase {execution.status}")
    subject = f"{headline}: {purchased} of {len(selected)} commitments bought"
    if execution.purchase_mode == PurchaseMode.DRY_RUN:
        headline = f"Dry run {execution.status.replace('_', ' ')}"
        quoted = sum(item.outcome == QUOTED for item in items)
        subject = f"{headline}: {quoted} of {len(selected)} commitments quoted, nothing bought"
    context = {
        "execution": execution,
        "account": account,
        "headline": headline,
        "mode": mode_meaning(execution.purchase_mode),
        "items": items,
        "upfront": summary.upfront,
        "savings": summary.savings,
        "details_url": details_url(settings, execution.execution_id),
    }
    return compose(
        subject,
        recipient=recipient,
        settings=settings,
        text=render_template("email/outcome.txt", **context),
        html=render_template("email/outcome.html", **context),
    )
