"""The numbers `/metrics` reads from the database: a few aggregate queries per scrape,
one GROUP BY per table, each answering a handful of rows (one per status, kind, state
or reason), whatever the size of the tables. No row is loaded into Python.

- Executions, by status: how many, their upfront cost and estimated (yearly) savings,
  how many are retries (successors, `retry_attempt_n > 0`), the oldest `created_at`,
  and, among approved rows that may start now (not waiting for their time, their plan
  or a freeze: `app.services.schedules.waiting`), the oldest moment one became
  startable: its `scheduled_for`, or its `updated_at` (approval, or release by beat),
  whichever is later, the very clock the reaper reads.
- Retry batch items, by state; emails (the `notifications` outbox), by kind and state.
- Refusals, by audit action (`*refused`) and the refusal's HTTP status, over the last
  `REFUSAL_WINDOW` only: the trail is never pruned, and a scrape reads its recent end
  through the index on `at` rather than the whole trail.
- Whether a freeze is on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from app.domain.statuses import Status
from app.models import AuditEvent, Notification, PurchaseExecution, PurchaseFreeze, RetryBatchItem
from app.services import channels, schedules

REFUSAL_WINDOW = timedelta(hours=1)
REFUSED_ACTIONS = "%refused"  # every refusal's action ends so (`app.services.audit`)


@dataclass(frozen=True)
class StatusFigures:
    count: int = 0
    upfront: Decimal = Decimal(0)
    savings: Decimal = Decimal(0)
    retries: int = 0


@dataclass(frozen=True)
class ExecutionFigures:
    by_status: dict[str, StatusFigures] = field(default_factory=dict)
    oldest_pending: datetime | None = None
    # The oldest moment an approved row that may start now became startable.
    oldest_startable: datetime | None = None


def execution_figures(session: Session, *, now: datetime) -> ExecutionFigures:
    row = PurchaseExecution
    became_startable = case(
        (row.scheduled_for > row.updated_at, row.scheduled_for), else_=row.updated_at
    )
    startable = and_(row.status == Status.APPROVED.value, ~schedules.waiting(now))
    query = select(
        row.status,
        func.count(),
        func.sum(row.total_upfront_cost),
        func.sum(row.estimated_savings),
        func.sum(case((row.retry_attempt_n > 0, 1), else_=0)),
        func.min(row.created_at),
        func.min(case((startable, became_startable))),
    ).group_by(row.status)
    by_status: dict[str, StatusFigures] = {}
    oldest_pending = oldest_startable = None
    for status, count, upfront, savings, retries, oldest, startable_since in session.execute(query):
        by_status[status] = StatusFigures(
            count=count,
            upfront=_amount(upfront),
            savings=_amount(savings),
            retries=int(retries or 0),
        )
        if status == Status.PENDING.value:
            oldest_pending = oldest
        if startable_since is not None:
            oldest_startable = startable_since
    return ExecutionFigures(by_status, oldest_pending, oldest_startable)


def retry_item_figures(session: Session) -> dict[str, int]:
    """Retry batch items by state (queued, succeeded, rejected, failed)."""
    query = select(RetryBatchItem.state, func.count()).group_by(RetryBatchItem.state)
    return {state: count for state, count in session.execute(query)}


def email_figures(session: Session) -> dict[tuple[str, str], int]:
    """Emails of the outbox by (kind, state)."""
    query = select(Notification.kind, Notification.state, func.count()).group_by(
        Notification.kind, Notification.state
    )
    return {(kind, state): count for kind, state, count in session.execute(query)}


def refusal_figures(session: Session, *, now: datetime) -> dict[tuple[str, str], int]:
    """Refusals of the last `REFUSAL_WINDOW` by (audit action, HTTP status)."""
    status = AuditEvent.details["status"].as_string()
    query = (
        select(AuditEvent.action, status, func.count())
        .where(AuditEvent.at >= now - REFUSAL_WINDOW, AuditEvent.action.like(REFUSED_ACTIONS))
        .group_by(AuditEvent.action, status)
    )
    figures: dict[tuple[str, str], int] = {}
    for action, code, count in session.execute(query):
        key = (action, _http_status(code))
        figures[key] = figures.get(key, 0) + count
    return figures


def freeze_on(session: Session) -> bool:
    return bool(session.scalar(select(func.count()).where(PurchaseFreeze.active.is_(True))))


def channel_message_families(session: Session) -> list[Metric]:
    """The channel outbox's messages (Slack, Teams, webhooks, email) by event and state."""
    family = GaugeMetricFamily(
        "ccp_channel_messages",
        "Notification channel messages in the outbox, by event and state.",
        labels=["event", "state"],
    )
    for (event, state), count in sorted(channels.message_counts(session).items()):
        family.add_metric([event, state], count)
    return [family]


def _amount(value: Decimal | float | int | None) -> Decimal:
    return Decimal(0) if value is None else Decimal(str(value))


def _http_status(code: object) -> str:
    """The refusal's status as a label: three digits, else "unknown" (a hand-written
    event), so no free text becomes a label."""
    text = str(code) if code is not None else ""
    return text if len(text) == 3 and text.isdigit() else "unknown"
