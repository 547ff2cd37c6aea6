"""Purchase executions and the suppressions that keep a recommendation from being bought twice."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import UUID_GLOB, Base, CanonicalUUID, JSONDocument, UTCDateTime, new_uuid, utc_now
from app.domain.providers import PurchaseMode
from app.domain.statuses import Status, sql_in_list
from app.models.accounts import CloudAccount
from app.models.causes import signature_on_insert
from app.models.leases import Leased


class PurchaseExecution(Leased, Base):
    """One buy: it waits for approval, runs against the provider, and ends.

    Every column outside the plain INSERT operators write has a server default, so operators and
    outside tools can insert rows with SQL alone.
    """

    __tablename__ = "purchase_executions"
    __table_args__ = (
        CheckConstraint(f"status IN ({sql_in_list()})", name="status_known"),
        CheckConstraint("retry_attempt_n >= 0", name="retry_attempt_n_non_negative"),
        CheckConstraint("step_number >= 1", name="step_number_positive"),
        # What PostgreSQL's uuid and jsonb types refuse, SQLite refuses by these checks.
        CheckConstraint(f"execution_id GLOB '{UUID_GLOB}'", name="execution_id_canonical").ddl_if(
            dialect="sqlite"
        ),
        CheckConstraint("json_valid(recommendations)", name="recommendations_json").ddl_if(
            dialect="sqlite"
        ),
        # One successor per failed row: concurrent retries race on this index.
        Index(
            "uq_purchase_executions_retry_execution_id",
            "retry_execution_id",
            unique=True,
            postgresql_where=text("retry_execution_id IS NOT NULL"),
            sqlite_where=text("retry_execution_id IS NOT NULL"),
        ),
        # History pages: newest first, with the id as the cursor's tie-breaker.
        Index("ix_purchase_executions_created_at_id", "created_at", "execution_id"),
        # One per history filter, each ending in that same order: a filtered page is a
        # walk of one index, never a sort of every matching row (migration 0006). The
        # status one also bounds the home page's capped counts; the others serve their
        # foreign keys' ON DELETE SET NULL.
        *(
            Index(
                f"ix_purchase_executions_{name}_created_at_id", column, "created_at", "execution_id"
            )
            for name, column in (
                ("status", "status"),
                ("account", "cloud_account_id"),
                ("plan", "plan_id"),
                ("creator", "created_by_user_id"),
                ("cause", "failure_signature"),
                ("savings", "estimated_savings"),
            )
        ),
        # Failures by cause: the retryable rows grouped by signature (migration 0014).
        Index("ix_purchase_executions_status_failure_signature", "status", "failure_signature"),
    )

    execution_id: Mapped[uuid.UUID] = mapped_column(
        CanonicalUUID, primary_key=True, default=new_uuid
    )
    plan_id: Mapped[uuid.UUID | None] = mapped_column(
        CanonicalUUID, ForeignKey("purchase_plans.id", ondelete="SET NULL")
    )
    step_number: Mapped[int] = mapped_column(Integer, server_default=text("1"), default=1)
    cloud_account_id: Mapped[uuid.UUID | None] = mapped_column(
        CanonicalUUID, ForeignKey("cloud_accounts.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(
        String(32), server_default=Status.PENDING.value, default=Status.PENDING.value
    )
    recommendations: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONDocument, server_default=text("'[]'"), default=list
    )
    total_upfront_cost: Mapped[Decimal] = mapped_column(
        Numeric(12, 2), server_default=text("0"), default=Decimal("0")
    )
    estimated_savings: Mapped[Decimal] = mapped_column(
        Numeric(12, 2), server_default=text("0"), default=Decimal("0")
    )
    error: Mapped[str | None] = mapped_column(Text)
    failure_signature: Mapped[str | None] = mapped_column(String(200), default=signature_on_insert)
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        CanonicalUUID, ForeignKey("users.id", ondelete="SET NULL")
    )
    # Who asked for this attempt, when it is a retry: the creator stays the lineage's
    # (whose purchase it is), so `approve-own` is never borrowed through `retry-any`, and
    # four-eyes refuses both. Not a foreign key: like the audit trail's actor, history.
    retried_by_user_id: Mapped[uuid.UUID | None] = mapped_column(CanonicalUUID)
    approved_by: Mapped[str | None] = mapped_column(String(320))
    # The user who approved (signed in, or by the link of an email sent to them), whose
    # permissions the executor checks again; NULL for an approval by the link of an
    # address that is no user's (the token was the authority). Not a foreign key: like
    # the audit trail's actor, it is history.
    approved_by_user_id: Mapped[uuid.UUID | None] = mapped_column(CanonicalUUID)
    # When it was approved: a group's spend per day counts the rows approved that day.
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_by: Mapped[str | None] = mapped_column(String(320))
    # An approved row starts at this time, not before (NULL: as soon as it is approved).
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retry_execution_id: Mapped[uuid.UUID | None] = mapped_column(
        CanonicalUUID, ForeignKey("purchase_executions.execution_id", ondelete="SET NULL")
    )
    retry_attempt_n: Mapped[int] = mapped_column(Integer, server_default=text("0"), default=0)
    approval_token_hash: Mapped[str | None] = mapped_column(String(128))
    approval_token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notification_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the approvers were reminded that its `scheduled_for` is near (once per row).
    reminder_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The mode the row ran in (its account's when it started); NULL until it runs.
    purchase_mode: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utc_now())
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, server_default=utc_now(), onupdate=utc_now()
    )

    # Loaded with the row (one query per batch of rows): the retry rules read its provider.
    cloud_account: Mapped[CloudAccount | None] = relationship(lazy="selectin")

    @property
    def account_provider(self) -> str | None:
        """The provider of the execution's cloud account, if it has one."""
        return self.cloud_account.provider if self.cloud_account is not None else None

    @property
    def account_mode(self) -> PurchaseMode:
        """The mode its account buys in now; an execution without an account is
        simulated (no cloud to buy from)."""
        return self.cloud_account.mode if self.cloud_account is not None else PurchaseMode.SIMULATE

    def __repr__(self) -> str:
        return f"<PurchaseExecution {self.execution_id} {self.status}>"


class PurchaseSuppression(Base):
    """Hides matching recommendations from new purchases while an execution is in flight."""

    __tablename__ = "purchase_suppressions"
    __table_args__ = (
        UniqueConstraint(
            "execution_id",
            "account_id",
            "provider",
            "service",
            "region",
            "resource_type",
            "engine",
            name="uq_purchase_suppressions_scope",
        ),
        CheckConstraint("suppressed_count > 0", name="suppressed_count_positive"),
        Index("ix_purchase_suppressions_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    execution_id: Mapped[uuid.UUID] = mapped_column(
        CanonicalUUID, ForeignKey("purchase_executions.execution_id", ondelete="CASCADE")
    )
    account_id: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(16))
    service: Mapped[str] = mapped_column(String(100))
    region: Mapped[str] = mapped_column(String(100))
    resource_type: Mapped[str] = mapped_column(String(200))
    engine: Mapped[str] = mapped_column(String(100), server_default=text("''"), default="")
    suppressed_count: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utc_now())
