"""Retries: one batch, one item per row asked for. A single retry is a batch of one
(`kind` "single", whose id is the request id the API answers); a bulk retry names its
rows by ids or by a history filter."""

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
from app.domain.bulk_retry import BatchKind
from app.domain.retry import RequestState
from app.models.leases import Leased

_STATES = ", ".join(f"'{state.value}'" for state in RequestState)


class RetryBatch(Base):
    """Who asked to retry which rows (one, by ids, or by a filter), and whether forced.

    The batch's progress is not stored: it is counted from its items (its state, and
    when it finished: the last item's `settled_at`), so nothing can drift, however many
    workers settle its chunks at once.
    """

    __tablename__ = "retry_batches"
    __table_args__ = (Index("ix_retry_batches_requested_by_user_id", "requested_by_user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(CanonicalUUID, primary_key=True, default=new_uuid)
    requested_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        CanonicalUUID, ForeignKey("users.id", ondelete="SET NULL")
    )
    requested_by_email: Mapped[str] = mapped_column(String(320))
    force: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)
    kind: Mapped[str] = mapped_column(
        String(16), server_default=BatchKind.BULK.value, default=BatchKind.BULK.value
    )
    total: Mapped[int] = mapped_column(Integer)
    # What was asked: {"execution_ids": n} or {"filter": {...}}, for the trail and the page.
    selection: Mapped[dict[str, Any]] = mapped_column(
        JSONDocument, server_default=text("'{}'"), default=dict
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utc_now())

    @property
    def is_single(self) -> bool:
        """A single retry (its id is the request id the API answers)."""
        return self.kind == BatchKind.SINGLE

    def __repr__(self) -> str:
        return f"<RetryBatch {self.id} total={self.total}>"


class RetryBatchItem(Leased, Base):
    """One row of a batch and its own outcome, settled once: `queued`, then `succeeded`
    (with the successor), `rejected` (with the refusal's status, error and details, as
    the single retry would answer) or `failed` (an error in the worker, in `error`).

    `execution_id` is the id as it was given, kept as text: a malformed or unknown id
    gets its own 400 or 404 outcome, like any other refusal. Items are settled a chunk
    at a time; `chunk` says which task settles the item, under a lease on its items.
    """

    __tablename__ = "retry_batch_items"
    __table_args__ = (
        CheckConstraint(f"state IN ({_STATES})", name="state_known"),
        Index("ix_retry_batch_items_batch_id_chunk", "batch_id", "chunk"),
        Index("ix_retry_batch_items_state", "state"),
    )

    batch_id: Mapped[uuid.UUID] = mapped_column(
        CanonicalUUID, ForeignKey("retry_batches.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    chunk: Mapped[int] = mapped_column(Integer)
    execution_id: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(
        String(16), server_default=RequestState.QUEUED.value, default=RequestState.QUEUED.value
    )
    successor_execution_id: Mapped[uuid.UUID | None] = mapped_column(
        CanonicalUUID, ForeignKey("purchase_executions.execution_id", ondelete="SET NULL")
    )
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(
        JSONDocument, server_default=text("'{}'"), default=dict
    )
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<RetryBatchItem {self.batch_id}#{self.position} {self.state}>"
