"""The outcome email's message: how an execution ended, item by item (purchased with its
purchase id, failed with the provider's reason, or skipped), with the totals and a link
to the execution in the panel. The executor's per-item fields say it all (`purchased`,
`purchase_id`, `error`, `selected`), so the message reads the row and nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
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
from app.services.purchase_summary import Line, line_of, money, summarize

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


def headline_of(
    execution: PurchaseExecution, items: list[ItemOutcome] | None = None
) -> tuple[str, str]:
    """How the row ended, and what it bought of what was selected ("2 of 3 commitments
    bought"; a dry run counts what was quoted), so the inbox alone tells a complete
    purchase from a partial one."""
    if items is None:
        items = [outcome_of(item) for item in items_of(execution.recommendations)]
    selected = sum(item.outcome != SKIPPED for item in items)
    if execution.purchase_mode == PurchaseMode.DRY_RUN:
        quoted = sum(item.outcome == QUOTED for item in items)
        return (
            f"Dry run {execution.status.replace('_', ' ')}",
            f"{quoted} of {selected} commitments quoted, nothing bought",
        )
    purchased = sum(item.outcome == PURCHASED for item in items)
    headline = HEADLINES.get(Status(execution.status), f"Purchase {execution.status}")
    return headline, f"{purchased} of {selected} commitments bought"


def render(
    execution: PurchaseExecution,
    account: CloudAccount | None,
    *,
    settings: Settings,
    recipient: str,
) -> MIMEMultipart:
    """The message: a text and an HTML part with the status and the row's error, the
    totals, one line per recommendation with its outcome, and the panel's detail page.
    The subject is `headline_of`'s."""
    summary = summarize(execution)
    items = [outcome_of(item) for item in items_of(execution.recommendations)]
    headline, counted = headline_of(execution, items)
    subject = f"{headline}: {counted}"
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


def render_digest(
    executions: list[PurchaseExecution], *, settings: Settings, recipient: str
) -> MIMEMultipart:
    """A bulk retry's outcome emails to one person as one message: how many ended how,
    the upfront cost of what completed, and one line per row with its headline, what
    it bought, its error and its detail page."""
    counts: dict[str, int] = {}
    for execution in executions:
        counts[execution.status] = counts.get(execution.status, 0) + 1
    completed = [e for e in executions if e.status == Status.COMPLETED.value]
    tally = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in sorted(counts.items()))
    plural = "s" if len(executions) != 1 else ""
    context = {
        "rows": [(execution, *headline_of(execution)) for execution in executions],
        "count": len(executions),
        "tally": tally,
        "upfront": money(sum((e.total_upfront_cost for e in completed), Decimal(0))),
        "money": money,
        "details_url": lambda execution: details_url(settings, execution.execution_id),
    }
    return compose(
        f"Outcome of a retry: {len(executions)} purchase{plural}, {tally}",
        recipient=recipient,
        settings=settings,
        text=render_template("email/outcome_digest.txt", **context),
        html=render_template("email/outcome_digest.html", **context),
    )
