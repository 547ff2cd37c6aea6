"""Retry requests: asked for in the web layer or the CLI, settled by the worker."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, CanonicalUUID, JSONDocument, UTCDateTime, new_uuid, utc_now
from app.domain.retry import RequestState

_STATES = ", ".join(f"'{state.value}'" for state in RequestState)


class RetryRequest(Base):
    """Who asked to retry which row (and whether forced), and how the worker settled it.

    `state` moves once, from `queued` to `succeeded` (with `successor_execution_id`),
    `rejected` (with the refusal's `error`, `refusal_status` and `details`, exactly as
    the web layer would give them) or `failed` (with the reason in `error`).
    """

    __tablename__ = "retry_requests"
    __table_args__ = (
        CheckConstraint(f"state IN ({_STATES})", name="state_known"),
        Index("ix_retry_requests_execution_id_state", "execution_id", "state"),
        Index("ix_retry_requests_requested_by_user_id", "requested_by_user_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(CanonicalUUID, primary_key=True, default=new_uuid)
    execution_id: Mapped[uuid.UUID] = mapped_column(
        CanonicalUUID, ForeignKey("purchase_executions.execution_id", ondelete="CASCADE")
    )
    requested_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        CanonicalUUID, ForeignKey("users.id", ondelete="SET NULL")
    )
    requested_by_email: Mapped[str] = mapped_column(String(320))
    force: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)
    state: Mapped[str] = mapped_column(
        String(16), server_default=RequestState.QUEUED.value, default=RequestState.QUEUED.value
    )
    successor_execution_id: Mapped[uuid.UUID | None] = mapped_column(
        CanonicalUUID, ForeignKey("purchase_executions.execution_id", ondelete="SET NULL")
    )
    retry_attempt_n: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    refusal_status: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(
        JSONDocument, server_default=text("'{}'"), default=dict
    )
    task_id: Mapped[str | None] = mapped_column(String(155))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utc_now())
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, server_default=utc_now(), onupdate=utc_now()
    )
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<RetryRequest {self.id} {self.state}>"
