"""The email outbox and the tokens of the links those emails carry."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, CanonicalUUID, UTCDateTime, new_uuid, utc_now
from app.domain.outbox import NotificationState
from app.models.leases import Leased

_STATES = ", ".join(f"'{state.value}'" for state in NotificationState)


class Notification(Leased, Base):
    """An email the product owes about an execution, and how far it got.

    Written in the transaction that creates the need (a retry's successor), so it is
    never lost; claimed by one task at a time with a conditional UPDATE, so it is never
    sent by two at once; settled once (`app.domain.outbox`).
    """

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("execution_id", "kind"),
        CheckConstraint(f"state IN ({_STATES})", name="state_known"),
        Index("ix_notifications_state_due_at", "state", "due_at"),
        Index("ix_notifications_batch_id_kind_state", "batch_id", "kind", "state"),
    )

    id: Mapped[uuid.UUID] = mapped_column(CanonicalUUID, primary_key=True, default=new_uuid)
    execution_id: Mapped[uuid.UUID] = mapped_column(
        CanonicalUUID, ForeignKey("purchase_executions.execution_id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(32))
    # The bulk retry whose digest carries this email (`app.services.digests`); NULL: it
    # goes on its own.
    batch_id: Mapped[uuid.UUID | None] = mapped_column(CanonicalUUID)
    state: Mapped[str] = mapped_column(
        String(16),
        server_default=NotificationState.QUEUED.value,
        default=NotificationState.QUEUED.value,
    )
    attempts: Mapped[int] = mapped_column(Integer, server_default="0", default=0)
    # A queued notification may be claimed from then on (a retry waits for its backoff).
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utc_now())
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utc_now())
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, server_default=utc_now(), onupdate=utc_now()
    )

    def __repr__(self) -> str:
        return f"<Notification {self.kind} {self.execution_id} {self.state}>"


class ApprovalToken(Base):
    """One link of one approval email: it opens one action on one execution.

    Only the token's SHA-256 is stored. Every copy of an email has its own tokens, so
    should an email ever go out twice, the links of every copy work.
    """

    __tablename__ = "approval_tokens"
    __table_args__ = (
        CheckConstraint("action IN ('approve', 'cancel')", name="action_known"),
        Index("ix_approval_tokens_execution_id", "execution_id"),
    )

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    execution_id: Mapped[uuid.UUID] = mapped_column(
        CanonicalUUID, ForeignKey("purchase_executions.execution_id", ondelete="CASCADE")
    )
    action: Mapped[str] = mapped_column(String(16))
    # Who the email went to: acting by the link records them as approver or canceller.
    recipient: Mapped[str | None] = mapped_column(String(320))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utc_now())


class DigestLink(Base):
    """The "review and approve selected" link of one digest: it opens the page of the
    bulk retry's rows that went to `recipient`. Only the token's SHA-256 is stored; the
    rows themselves are approved through their own approve links' rows, each checked as
    a click on it would be."""

    __tablename__ = "digest_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch_id: Mapped[uuid.UUID] = mapped_column(
        CanonicalUUID, ForeignKey("retry_batches.id", ondelete="CASCADE")
    )
    recipient: Mapped[str] = mapped_column(String(320))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utc_now())
