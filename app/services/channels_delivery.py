"""Sending a channel message through Apprise: claimed, sent with no transaction open,
settled once.

`claim` takes a queued message (or one whose sender's lease lapsed) with one
conditional UPDATE under a lease, so no two tasks send it at once; it returns what
sending needs, read in the same transaction, so `deliver` touches no database.
`deliver` hands it to Apprise: Slack and Teams by their Apprise URL (or the webhook URL
Apprise accepts), email through Apprise's email plugin on this deployment's SMTP
settings (SMTP_HOST, SMTP_PORT, SMTP_USERNAME/PASSWORD, SMTP_STARTTLS, FROM_EMAIL), and
a webhook through the product's own Apprise plugin (`app.services.channels_webhook`),
which signs the body. Then `record_sent`, or `record_failure`: queued again after a
backoff (EMAIL_RETRY_BASE_SECONDS, doubling, EMAIL_MAX_RETRIES times, like emails),
then failed for good with the error; both audited (`channel_message.sent`,
`channel_message.failed`).

The sweep (`lapsed_messages`) hands back a message whose sender died mid-send (its
lease lapsed) and one the broker lost (still queued past its broker lease).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import apprise
from apprise.plugins.email import NotifyEmail
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from app.config import Settings
from app.domain.channels import ChannelEvent, ChannelKind, MessageState, mask, webhook_body
from app.domain.outbox import backoff_seconds, gives_up
from app.domain.staleness import UNSTARTED_AFTER
from app.models import ChannelMessage, NotificationChannel
from app.services import audit, channels_webhook, leases

CHANNEL_DISABLED = "the channel was disabled or removed before the message was sent"
FROM_EMAIL_MISSING = "FROM_EMAIL not configured for this deployment"
NOT_APPRISE = "the channel's target is not a URL Apprise accepts"
# The longest error kept on a message.
_MAX_ERROR = 2000
NOTIFY_TYPES = {
    ChannelEvent.PURCHASE_COMPLETED: apprise.NotifyType.SUCCESS,
    ChannelEvent.PURCHASE_PARTIALLY_COMPLETED: apprise.NotifyType.WARNING,
    ChannelEvent.PURCHASE_FAILED: apprise.NotifyType.FAILURE,
    ChannelEvent.FAILURE_DIGEST: apprise.NotifyType.FAILURE,
    ChannelEvent.FREEZE_SWITCHED: apprise.NotifyType.WARNING,
}


@dataclass(frozen=True)
class OutgoingMessage:
    """A claimed message, with all sending needs (the target and secret included)."""

    message_id: uuid.UUID
    channel_id: uuid.UUID
    channel_name: str
    kind: ChannelKind
    target: str
    secret: str | None
    event: str
    dedupe_key: str
    subject: str
    body: str
    attempt: int

    def payload(self) -> dict[str, Any]:
        """What a webhook receives (and a receiver deduplicates on `id`)."""
        return {
            "id": str(self.message_id),
            "event": self.event,
            "dedupe_key": self.dedupe_key,
            "subject": self.subject,
            "body": self.body,
        }


@dataclass(frozen=True)
class Failure:
    """Why a send failed; a permanent one is not retried."""

    reason: str
    permanent: bool = False


def claim(
    session: Session, message_id: uuid.UUID, *, owner: str, now: datetime
) -> OutgoingMessage | None:
    """Claim the message for `owner` under a lease: None when there is nothing to send
    now (no such message, another live task holds it, it waits for its backoff, or it is
    settled). A message whose channel was disabled fails for good here."""
    claimed = session.scalars(
        update(ChannelMessage)
        .where(
            ChannelMessage.id == message_id,
            or_(
                and_(
                    ChannelMessage.state == MessageState.QUEUED.value,
                    ChannelMessage.due_at <= now,
                ),
                ChannelMessage.state == MessageState.SENDING.value,
            ),
            leases.available(ChannelMessage, owner, now),
        )
        .values(
            state=MessageState.SENDING.value,
            attempts=ChannelMessage.attempts + 1,
            **leases.held_by(owner, now),
        )
        .returning(ChannelMessage)
        .execution_options(populate_existing=True, synchronize_session=False)
    ).one_or_none()
    if claimed is None:
        return None
    channel = session.scalars(
        select(NotificationChannel).where(NotificationChannel.id == claimed.channel_id)
    ).one_or_none()
    if channel is None or not channel.enabled:
        _settle_failed(session, claimed, CHANNEL_DISABLED, channel, now=now)
        return None
    return OutgoingMessage(
        message_id=claimed.id,
        channel_id=channel.id,
        channel_name=channel.name,
        kind=ChannelKind(channel.kind),
        target=channel.target,
        secret=channel.secret,
        event=claimed.event,
        dedupe_key=claimed.dedupe_key,
        subject=claimed.subject,
        body=claimed.body,
        attempt=claimed.attempts,
    )


def deliver(settings: Settings, message: OutgoingMessage) -> Failure | None:
    """Send the message through Apprise (no database): None when the service took it."""
    notifier = apprise.Apprise()
    added = _add_target(notifier, settings, message)
    if isinstance(added, Failure):
        return added
    body = message.body
    if message.kind is ChannelKind.WEBHOOK:
        body = webhook_body(message.payload()).decode()
    event = _event(message.event)
    notify_type = (
        NOTIFY_TYPES.get(event, apprise.NotifyType.INFO) if event else apprise.NotifyType.INFO
    )
    # What Apprise logs of a failure is the error the message keeps.
    with apprise.LogCapture(  # type: ignore[no-untyped-call]
        level=apprise.logging.WARNING, fmt="%(message)s"
    ) as captured:
        sent = notifier.notify(body=body, title=message.subject, notify_type=notify_type)
    if sent:
        return None
    logged = [line.strip() for line in captured.getvalue().splitlines() if line.strip()]
    return Failure(" | ".join(logged[-3:])[:_MAX_ERROR] or "Apprise could not deliver it")


def _add_target(
    notifier: apprise.Apprise, settings: Settings, message: OutgoingMessage
) -> Failure | None:
    if message.kind is ChannelKind.EMAIL:
        if not settings.from_email:
            return Failure(FROM_EMAIL_MISSING, permanent=True)
        plugin = NotifyEmail(  # type: ignore[no-untyped-call]
            smtp_host=settings.smtp_host,
            host=settings.smtp_host,
            port=settings.smtp_port,
            user=settings.smtp_username,
            password=settings.smtp_password,
            from_addr=settings.from_email,
            targets=[message.target],
            secure_mode="starttls" if settings.smtp_starttls else "insecure",
            secure=settings.smtp_starttls,
        )
        added = notifier.add(plugin)
    elif message.kind is ChannelKind.WEBHOOK:
        added = notifier.add(channels_webhook.apprise_url(message.target, message.secret or ""))
    else:
        added = notifier.add(message.target)
    return None if added else Failure(NOT_APPRISE, permanent=True)


def _event(name: str) -> ChannelEvent | None:
    try:
        return ChannelEvent(name)
    except ValueError:
        return None


def record_sent(session: Session, message: OutgoingMessage, *, now: datetime) -> bool:
    """The service took it: sent, once (False when another run settled it first)."""
    settled = session.scalars(
        update(ChannelMessage)
        .where(
            ChannelMessage.id == message.message_id,
            ChannelMessage.state == MessageState.SENDING.value,
        )
        .values(state=MessageState.SENT.value, sent_at=now, error=None, lease_owner=None)
        .returning(ChannelMessage.id)
        .execution_options(synchronize_session=False)
    ).first()
    if settled is None:
        return False
    audit.record(
        session,
        "channel_message.sent",
        details={**_trail(message), "attempt": message.attempt},
    )
    return True


def record_failure(
    session: Session,
    message: OutgoingMessage,
    failure: Failure,
    *,
    settings: Settings,
    now: datetime,
) -> float | None:
    """The service did not take it. Returns the seconds before the next attempt, or None
    when the message failed for good (a permanent failure, or the last attempt)."""
    row = session.get(ChannelMessage, message.message_id, populate_existing=True)
    if row is None or row.state != MessageState.SENDING.value:
        return None
    if not failure.permanent and not gives_up(message.attempt, settings.email_max_retries):
        wait = backoff_seconds(message.attempt - 1, base=settings.email_retry_base_seconds)
        row.state = MessageState.QUEUED.value
        row.due_at = now + timedelta(seconds=wait)
        row.error = failure.reason[:_MAX_ERROR]
        # The next attempt is a message the task queues now, due after the backoff; the
        # sweep queues it again should the broker lose that one.
        row.lease_owner = None
        row.lease_expires_at = row.due_at + UNSTARTED_AFTER
        return wait
    channel = session.get(NotificationChannel, message.channel_id)
    _settle_failed(session, row, f"send failed: {failure.reason}", channel, now=now)
    return None


def _settle_failed(
    session: Session,
    row: ChannelMessage,
    reason: str,
    channel: NotificationChannel | None,
    *,
    now: datetime,
) -> None:
    row.state = MessageState.FAILED.value
    row.error = reason[:_MAX_ERROR]
    row.lease_owner = None
    audit.record(
        session,
        "channel_message.failed",
        details={
            "message_id": str(row.id),
            "channel": channel.name if channel is not None else None,
            "target": mask(channel.target) if channel is not None else None,
            "event": row.event,
            "dedupe_key": row.dedupe_key,
            "attempt": row.attempts,
            "error": row.error,
            "at": now.isoformat(),
        },
    )


def _trail(message: OutgoingMessage) -> dict[str, Any]:
    return {
        "message_id": str(message.message_id),
        "channel": message.channel_name,
        "target": mask(message.target),
        "event": message.event,
        "dedupe_key": message.dedupe_key,
    }


def lapsed_messages(session: Session, *, now: datetime) -> list[uuid.UUID]:
    """Messages no task is working on, handed back to the broker (their ids, to queue):
    a claim whose lease lapsed (the sender died mid-send: it goes out again), and a
    queued one whose broker lease lapsed (the broker lost its task)."""
    dead_sender = and_(
        ChannelMessage.state == MessageState.SENDING.value,
        ChannelMessage.lease_expires_at < now,
    )
    lost = and_(
        ChannelMessage.state == MessageState.QUEUED.value,
        ChannelMessage.due_at <= now,
        leases.lapsed(ChannelMessage, now),
    )
    return list(
        session.scalars(
            update(ChannelMessage)
            .where(or_(dead_sender, lost))
            .values(state=MessageState.QUEUED.value, **leases.in_broker(now))
            .returning(ChannelMessage.id)
            .execution_options(synchronize_session=False)
        )
    )
