"""The audit trail: every state change, and every refusal of one."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, CanonicalUUID, JSONDocument, UTCDateTime, utc_now

# SQLite only auto-increments an INTEGER PRIMARY KEY, not a BIGINT one.
_AuditId = BigInteger().with_variant(Integer(), "sqlite")


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_execution_id_at", "execution_id", "at"),
        Index("ix_audit_events_at", "at"),
    )

    id: Mapped[int] = mapped_column(_AuditId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utc_now())
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(
        CanonicalUUID, ForeignKey("users.id", ondelete="SET NULL")
    )
    actor_email: Mapped[str | None] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(100))
    # No foreign key: the trail outlives the rows it speaks of.
    execution_id: Mapped[uuid.UUID | None] = mapped_column(CanonicalUUID)
    details: Mapped[dict[str, Any]] = mapped_column(
        JSONDocument, server_default=text("'{}'"), default=dict
    )
