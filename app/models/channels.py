"""Notification channels (Slack, Teams, a signed webhook, email) and their outbox."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, CanonicalUUID, JSONDocument, UTCDateTime, new_uuid, utc_now
from app.domain.channels import ChannelKind, MessageState
from app.models.leases import Leased

_KINDS = ", ".join(f"'{kind.value}'" for kind in ChannelKind)
_STATES = ", ".join(f"'{state.value}'" for state in MessageState)


class NotificationChannel(Base):
    """Where alerts go: a Slack or Teams channel, a webhook signed with HMAC, an email
    address. `target` (the Apprise URL, the webhook URL or the address) and `secret`
    are secrets: shown only masked (`app.domain.channels.mask`). With no
    `cloud_account_id` the channel is global; `events` lists what it hears (empty: all).
    """

    __tablename__ = "notification_channels"
    __table_args__ = (
        UniqueConstraint("name"),
        CheckConstraint(f"kind IN ({_KINDS})", name="kind_known"),
        Index("ix_notification_channels_enabled_cloud_account_id", "enabled", "cloud_account_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(CanonicalUUID, primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(Text)
    cloud_account_id: Mapped[uuid.UUID | None] = mapped_column(
        CanonicalUUID, ForeignKey("cloud_accounts.id", ondelete="CASCADE")
    )
    events: Mapped[list[str]] = mapped_column(
        JSONDocument, server_default=text("'[]'"), default=list
    )
    # The HMAC key of a webhook channel (NULL for the other kinds).
    secret: Mapped[str | None] = mapped_column(String(500))
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"), default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utc_now())
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, server_default=utc_now(), onupdate=utc_now()
    )

    def __repr__(self) -> str:
        return f"<NotificationChannel {self.name} {self.kind}>"


class ChannelMessage(Leased, Base):
    """A message the product owes a channel, and how far it got.

    Written in the transaction that creates the need (owing it twice is harmless:
    UNIQUE(channel_id, dedupe_key)); claimed by one task at a time with a conditional
    UPDATE under a lease; sent with no transaction open; settled once.
    """

    __tablename__ = "channel_messages"
    __table_args__ = (
        UniqueConstraint("channel_id", "dedupe_key"),
        CheckConstraint(f"state IN ({_STATES})", name="state_known"),
        Index("ix_channel_messages_state_due_at", "state", "due_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(CanonicalUUID, primary_key=True, default=new_uuid)
    channel_id: Mapped[uuid.UUID] = mapped_column(
        CanonicalUUID, ForeignKey("notification_channels.id", ondelete="CASCADE")
    )
    event: Mapped[str] = mapped_column(String(64))
    dedupe_key: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(
        String(16), server_default=MessageState.QUEUED.value, default=MessageState.QUEUED.value
    )
    attempts: Mapped[int] = mapped_column(Integer, server_default="0", default=0)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utc_now())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utc_now())

    def __repr__(self) -> str:
        return f"<ChannelMessage {self.event} {self.dedupe_key} {self.state}>"
