"""What the notification channels are owed: one outbox message per channel that hears an
event, written in the transaction that creates the need.

`owe(session, event, account_id=..., key=..., subject=..., body=..., now=...)` writes
one `channel_messages` row per enabled channel that hears `event` (the global ones, and
those of `account_id`), with insert-or-ignore on (channel, `key`): owing a message
twice is harmless. With no channel at all it costs one indexed SELECT and nothing
else, so a bulk retry's thousands of rows cost nothing more (nothing is cached across
requests).

The messages are queued for the worker (`channels.send`) once the transaction commits
(a hook on the session's commit; nothing is queued if it rolls back); should the
broker lose one, the sweep (`channels_delivery.lapsed_messages`) queues it again. The
sending, with no transaction open, is `app.services.channels_delivery`'s.

One function per event, for the code paths that create the need:

- `owe_approval_needed(session, execution_ids, now=)`: rows that wait for approval, one
  message each (a single row: a new purchase, a single retry).
- `owe_batch_approval_needed(session, batch_id, count, upfront, monthly_savings, now)`:
  a bulk retry's approvals as ONE message per channel for the whole batch (call it
  where the batch's approval digest is owed, and do not owe its rows one by one).
- `owe_outcome(session, execution_id, now=)`: completed, partially completed, failed.
- `owe_schedule_reminder(session, execution_ids, now=)`: scheduled rows about to start.
- `owe_freeze_switched(session, on=, actor_email=, reason=, now=)`.
- `owe_failure_digest(session, threshold=, now=)`: beat's check of the money stuck in
  failed rows, at most one message per day and threshold.
- `owe_test(session, channel_id, actor_email=, now=)`: "Send test message".
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import event as orm_event
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app import background
from app.config import get_settings
from app.db import new_uuid
from app.domain.channels import ChannelEvent, MessageState, hears
from app.domain.errors import DomainError
from app.domain.money import usd
from app.domain.statuses import Status
from app.models import ChannelMessage, NotificationChannel, PurchaseExecution
from app.services import leases
from app.services.email_message import details_url
from app.task_names import SEND_CHANNEL_MESSAGE

OUTCOME_EVENTS = {
    Status.COMPLETED.value: ChannelEvent.PURCHASE_COMPLETED,
    Status.PARTIALLY_COMPLETED.value: ChannelEvent.PURCHASE_PARTIALLY_COMPLETED,
    Status.FAILED.value: ChannelEvent.PURCHASE_FAILED,
}
HEADLINES = {
    ChannelEvent.PURCHASE_COMPLETED: "Purchase completed",
    ChannelEvent.PURCHASE_PARTIALLY_COMPLETED: "Purchase partially completed",
    ChannelEvent.PURCHASE_FAILED: "Purchase failed",
}
# Rows per INSERT statement.
_CHUNK = 500
# Where a session keeps the messages it owed, queued once it commits.
_OWED = "channel_messages_owed"


@dataclass(frozen=True)
class Owed:
    """One message to owe every channel that hears it."""

    account_id: uuid.UUID | None
    key: str
    subject: str
    body: str


def owe(
    session: Session,
    event: ChannelEvent,
    *,
    account_id: uuid.UUID | None,
    key: str,
    subject: str,
    body: str,
    now: datetime,
) -> list[uuid.UUID]:
    """Owe one message about `event` to every enabled channel that hears it (global, or
    `account_id`'s). Returns the ids of the messages this call wrote."""
    return owe_all(session, event, [Owed(account_id, key, subject, body)], now=now)


def owe_all(
    session: Session, event: ChannelEvent, owed: Iterable[Owed], *, now: datetime
) -> list[uuid.UUID]:
    """`owe` for many messages at once: one SELECT of the channels, then (only if some
    hear `event`) insert-or-ignore statements of up to `_CHUNK` rows."""
    listeners = _listeners(session, event)
    if not listeners:
        return []
    return _insert(session, event, listeners, list(owed), now=now)


def _listeners(
    session: Session, event: ChannelEvent, *, only: uuid.UUID | None = None
) -> list[tuple[uuid.UUID, uuid.UUID | None]]:
    """(channel, its account) of every enabled channel that hears `event`."""
    return _hearing(_enabled(session, only=only), event)


def _enabled(
    session: Session, *, only: uuid.UUID | None = None
) -> list[tuple[uuid.UUID, uuid.UUID | None, list[str]]]:
    """(channel, its account, its events) of every enabled channel: one SELECT on the
    enabled index (a deployment has a handful of channels)."""
    query = select(
        NotificationChannel.id, NotificationChannel.cloud_account_id, NotificationChannel.events
    ).where(NotificationChannel.enabled.is_(True))
    if only is not None:
        query = query.where(NotificationChannel.id == only)
    return [(row[0], row[1], list(row[2] or [])) for row in session.execute(query)]


def _hearing(
    channels: list[tuple[uuid.UUID, uuid.UUID | None, list[str]]], event: ChannelEvent
) -> list[tuple[uuid.UUID, uuid.UUID | None]]:
    return [
        (channel_id, account_id)
        for channel_id, account_id, events in channels
        if hears(events, event)
    ]


def _insert(
    session: Session,
    event: ChannelEvent,
    listeners: list[tuple[uuid.UUID, uuid.UUID | None]],
    owed: Sequence[Owed],
    *,
    now: datetime,
) -> list[uuid.UUID]:
    broker = leases.in_broker(now)
    rows = [
        {
            "id": new_uuid(),
            "channel_id": channel_id,
            "event": event.value,
            "dedupe_key": item.key[:200],
            "subject": item.subject[:500],
            "body": item.body,
            "state": MessageState.QUEUED.value,
            "attempts": 0,
            "due_at": now,
            "created_at": now,
            **broker,
        }
        for item in owed
        for channel_id, account_id in listeners
        if account_id is None or account_id == item.account_id
    ]
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    written: list[uuid.UUID] = []
    for start in range(0, len(rows), _CHUNK):
        written += session.scalars(
            insert(ChannelMessage)
            .values(rows[start : start + _CHUNK])
            .on_conflict_do_nothing(index_elements=["channel_id", "dedupe_key"])
            .returning(ChannelMessage.id)
        ).all()
    _queue_after_commit(session, written)
    return written


def _queue_after_commit(session: Session, message_ids: list[uuid.UUID]) -> None:
    """Hand the messages to the broker once `session` commits (never before: the task
    reads the row); a rollback forgets them."""
    if not message_ids:
        return
    if not orm_event.contains(session, "after_commit", _queue_owed):
        orm_event.listen(session, "after_commit", _queue_owed)
        orm_event.listen(session, "after_rollback", _forget_owed)
    session.info.setdefault(_OWED, []).extend(message_ids)


def _queue_owed(session: Session) -> None:
    for message_id in session.info.pop(_OWED, []):
        background.enqueue(SEND_CHANNEL_MESSAGE, [str(message_id)])


def _forget_owed(session: Session) -> None:
    session.info.pop(_OWED, None)


# The events ---------------------------------------------------------------------------


def owe_approval_needed(
    session: Session, execution_ids: Sequence[uuid.UUID], *, now: datetime
) -> list[uuid.UUID]:
    """Rows that wait for approval, one message each (single rows: a bulk retry's batch
    is `owe_batch_approval_needed`'s)."""
    return _owe_rows(session, ChannelEvent.APPROVAL_NEEDED, execution_ids, now=now)


def owe_batch_approval_needed(
    session: Session,
    batch_id: uuid.UUID,
    count: int,
    upfront: Decimal,
    monthly_savings: Decimal,
    now: datetime,
) -> list[uuid.UUID]:
    """A bulk retry's `count` rows wait for approval: ONE message per global channel for
    the batch (its rows may span accounts), keyed by the batch."""
    base = get_settings().app_base_url
    return owe(
        session,
        ChannelEvent.APPROVAL_NEEDED,
        account_id=None,
        key=f"approval_needed:batch:{batch_id}",
        subject=f"Approval needed: {count} purchases of a bulk retry",
        body=(
            f"{count} retried purchases wait for approval.\n"
            f"Upfront: {usd(upfront)}; monthly savings: {usd(monthly_savings)}.\n"
            f"Review: {base}/admin/retry_batches/{batch_id}"
        ),
        now=now,
    )


def owe_outcome(session: Session, execution_id: uuid.UUID, *, now: datetime) -> list[uuid.UUID]:
    """An execution ended: completed, partially completed or failed (channels that hear
    that event)."""
    channels = _enabled(session)
    if not any(_hearing(channels, event) for event in OUTCOME_EVENTS.values()):
        return []
    # The row was ended by a conditional UPDATE: read it as it is now.
    execution = session.get(PurchaseExecution, execution_id, populate_existing=True)
    if execution is None or execution.status not in OUTCOME_EVENTS:
        return []
    event = OUTCOME_EVENTS[execution.status]
    listeners = _hearing(channels, event)
    if not listeners:
        return []
    return _insert(session, event, listeners, [_about(execution, event)], now=now)


def owe_schedule_reminder(
    session: Session, execution_ids: Sequence[uuid.UUID], *, now: datetime
) -> list[uuid.UUID]:
    """Scheduled rows about to start, one message each."""
    return _owe_rows(session, ChannelEvent.SCHEDULE_REMINDER, execution_ids, now=now)


def owe_freeze_switched(
    session: Session, *, on: bool, actor_email: str, reason: str | None, now: datetime
) -> list[uuid.UUID]:
    """The freeze went on (with its reason) or off, by `actor_email`: global channels."""
    state = "on" if on else "off"
    subject = "Purchases frozen" if on else "Freeze lifted: purchases may start"
    because = f": {reason}" if reason else ""
    return owe(
        session,
        ChannelEvent.FREEZE_SWITCHED,
        account_id=None,
        key=f"freeze:{state}:{now.isoformat()}",
        subject=subject,
        body=f"{subject} by {actor_email}{because}.",
        now=now,
    )


def stuck_in_failed(session: Session) -> tuple[int, Decimal]:
    """Failed rows nobody retried yet, and their upfront money."""
    count, total = session.execute(
        select(
            func.count(), func.coalesce(func.sum(PurchaseExecution.total_upfront_cost), 0)
        ).where(
            PurchaseExecution.status == Status.FAILED.value,
            PurchaseExecution.retry_execution_id.is_(None),
        )
    ).one()
    return int(count), Decimal(total)


def owe_failure_digest(session: Session, *, threshold: Decimal, now: datetime) -> list[uuid.UUID]:
    """When the money stuck in failed rows is at least `threshold` (> 0), owe the
    failure digest to the global channels: at most one a day per threshold."""
    if threshold <= 0 or not _listeners(session, ChannelEvent.FAILURE_DIGEST):
        return []
    count, total = stuck_in_failed(session)
    if total < threshold:
        return []
    base = get_settings().app_base_url
    return owe(
        session,
        ChannelEvent.FAILURE_DIGEST,
        account_id=None,
        key=f"failure_digest:{now.date().isoformat()}:{threshold}",
        subject=f"{usd(total)} stuck in {count} failed purchases",
        body=(
            f"{count} failed purchases nobody has retried hold {usd(total)} upfront, "
            f"over the alert threshold of {usd(threshold)}.\n"
            f"Review: {base}/admin/purchases/?status=failed"
        ),
        now=now,
    )


def owe_test(
    session: Session, channel_id: uuid.UUID, *, actor_email: str, now: datetime
) -> uuid.UUID:
    """A test message to one channel, through the same outbox. 409 when it is disabled."""
    listeners = _listeners(session, ChannelEvent.TEST, only=channel_id)
    if not listeners:
        raise DomainError(409, "the channel is disabled: enable it to send a test message")
    owed = Owed(
        None,
        f"test:{new_uuid()}",
        "Test message from the commitment control plane",
        f"{actor_email} sent this test message at {now.isoformat(timespec='seconds')}.",
    )
    return _insert(session, ChannelEvent.TEST, [(channel_id, None)], [owed], now=now)[0]


def _owe_rows(
    session: Session, event: ChannelEvent, execution_ids: Sequence[uuid.UUID], *, now: datetime
) -> list[uuid.UUID]:
    if not execution_ids:
        return []
    listeners = _listeners(session, event)
    if not listeners:
        return []
    executions = session.scalars(
        select(PurchaseExecution).where(PurchaseExecution.execution_id.in_(list(execution_ids)))
    ).all()
    return _insert(session, event, listeners, [_about(row, event) for row in executions], now=now)


def _about(execution: PurchaseExecution, event: ChannelEvent) -> Owed:
    """The message about one execution."""
    account = execution.cloud_account
    where = f"{account.name} ({account.provider})" if account is not None else "no account"
    money = (
        f"Upfront: {usd(execution.total_upfront_cost)}; "
        f"estimated savings: {usd(execution.estimated_savings)}."
    )
    link = details_url(get_settings(), execution.execution_id)
    lines: list[Any]
    if event is ChannelEvent.APPROVAL_NEEDED:
        subject = f"Approval needed: purchase for {where}"
        lines = ["A purchase waits for approval.", money]
    elif event is ChannelEvent.SCHEDULE_REMINDER:
        when = (
            execution.scheduled_for.isoformat(timespec="minutes")
            if execution.scheduled_for
            else "soon"
        )
        subject = f"Scheduled purchase for {where} starts at {when}"
        lines = [f"A scheduled purchase starts at {when} UTC.", money]
    else:
        subject = f"{HEADLINES[event]}: purchase for {where}"
        lines = [money, f"Error: {execution.error}" if execution.error else None]
    body = "\n".join(str(line) for line in [*lines, f"Details: {link}"] if line)
    return Owed(
        execution.cloud_account_id, f"{event.value}:{execution.execution_id}", subject, body
    )


def message_counts(session: Session) -> dict[tuple[str, str], int]:
    """(event, state) → how many channel messages (for /metrics)."""
    rows = session.execute(
        select(ChannelMessage.event, ChannelMessage.state, func.count()).group_by(
            ChannelMessage.event, ChannelMessage.state
        )
    )
    return {(event, state): int(count) for event, state, count in rows}
