"""The filtered history as CSV, for a spreadsheet: every matching row, newest first.

Read in keyset batches (`execution_reads.history_page`, the API's own pages), so a million
rows stream in constant memory and a handful of statements per batch, never an OFFSET.
Every cell that a spreadsheet would read as a formula is neutralised.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session

from app.services import execution_reads
from app.services.execution_reads import HistoryFilter

BATCH_ROWS = 1000

HEADER = (
    "execution_id",
    "created_at",
    "status",
    "cloud_account_id",
    "account",
    "plan_id",
    "plan",
    "step_number",
    "created_by_user_id",
    "created_by_email",
    "total_upfront_cost",
    "estimated_savings",
    "retry_attempt_n",
    "retry_of",
    "retry_execution_id",
    "approved_by",
    "cancelled_by",
    "completed_at",
    "error",
)

# What makes Excel, LibreOffice or Google Sheets evaluate a cell (OWASP's "CSV
# injection"): a formula sign, or a tab or carriage return before one. The fullwidth
# signs are read as formulas by some of them too.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def neutralised(value: Any) -> str:
    """The cell as text; a leading apostrophe when it would otherwise be a formula (the
    spreadsheet shows the text as typed, and the apostrophe itself stays hidden)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_lines(session: Session, filters: HistoryFilter) -> Iterator[str]:
    """The header, then one CSV line per matching execution, newest first."""
    yield _line(HEADER)
    cursor: str | None = None
    while True:
        page = execution_reads.history_page(session, filters, limit=BATCH_ROWS, before=cursor)
        plans = execution_reads.plan_names(session, page.rows)
        for row in page.rows:
            account = row.cloud_account
            yield _line(
                (
                    row.execution_id,
                    row.created_at.isoformat(),
                    row.status,
                    row.cloud_account_id,
                    account.name if account is not None else None,
                    row.plan_id,
                    plans.get(row.plan_id) if row.plan_id is not None else None,
                    row.step_number,
                    row.created_by_user_id,
                    page.creators.get(row.created_by_user_id) if row.created_by_user_id else None,
                    f"{row.total_upfront_cost:.2f}",
                    f"{row.estimated_savings:.2f}",
                    row.retry_attempt_n,
                    page.predecessors.get(row.execution_id),
                    row.retry_execution_id,
                    row.approved_by,
                    row.cancelled_by,
                    row.completed_at.isoformat() if row.completed_at else None,
                    row.error,
                )
            )
        if page.next_cursor is None:
            return
        # The rows written are not kept: the session's identity map holds them weakly.
        cursor = page.next_cursor


def _line(cells: tuple[Any, ...]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow([neutralised(cell) for cell in cells])
    return buffer.getvalue()
