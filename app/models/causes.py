"""Failures by cause: the operator's record that a cause was fixed, and the default
that gives a failed row inserted as such (the demo, a test's factory) its signature."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, CanonicalUUID, UTCDateTime, utc_now
from app.domain.causes import MAX_SIGNATURE_LENGTH, failure_signature


def signature_on_insert(context: Any) -> str | None:
    """`failure_signature` of a row inserted without one: that of its status and error
    (`app.domain.causes.failure_signature`). Rows that fail later get theirs from the
    move that fails them (`app.services.transitions.move`)."""
    values = context.get_current_parameters()
    return failure_signature(values.get("status") or "", values.get("error"))


class FailureCauseFix(Base):
    """ "Fixed": an operator says the cause of a group of failures is dealt with. Every
    mark is kept (a cause can recur and be fixed again); the newest is the one shown."""

    __tablename__ = "failure_cause_fixes"
    __table_args__ = (Index("ix_failure_cause_fixes_signature_fixed_at", "signature", "fixed_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    signature: Mapped[str] = mapped_column(String(MAX_SIGNATURE_LENGTH))
    # Not a foreign key: like the audit trail's actor, it is history.
    fixed_by_user_id: Mapped[uuid.UUID | None] = mapped_column(CanonicalUUID)
    fixed_by_email: Mapped[str] = mapped_column(String(320))
    note: Mapped[str | None] = mapped_column(Text)
    fixed_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utc_now())
