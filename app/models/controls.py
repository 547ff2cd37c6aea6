"""What caps and stops buying: spend limits per group, and the global freeze."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, CanonicalUUID, JSONDocument, UTCDateTime, utc_now


class SpendLimit(Base):
    """What the members of one group may commit to (`app.domain.spending`).

    A list left NULL allows everything of its kind; an amount left NULL has no cap.
    Amounts are the items' own (upfront plus recurring over the term).
    """

    __tablename__ = "spend_limits"
    __table_args__ = (
        CheckConstraint("max_per_purchase IS NULL OR max_per_purchase >= 0", name="per_purchase"),
        CheckConstraint("max_per_day IS NULL OR max_per_day >= 0", name="per_day"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("groups.id", ondelete="CASCADE"), unique=True
    )
    # Cloud account ids (`cloud_accounts.id`, as text), provider names, service names.
    allowed_account_ids: Mapped[list[str] | None] = mapped_column(JSONDocument)
    allowed_providers: Mapped[list[str] | None] = mapped_column(JSONDocument)
    allowed_services: Mapped[list[str] | None] = mapped_column(JSONDocument)
    max_per_purchase: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    max_per_day: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, server_default=utc_now(), onupdate=utc_now()
    )

    def as_dict(self) -> dict[str, Any]:
        return {
            "allowed_account_ids": self.allowed_account_ids,
            "allowed_providers": self.allowed_providers,
            "allowed_services": self.allowed_services,
            "max_per_purchase": _text(self.max_per_purchase),
            "max_per_day": _text(self.max_per_day),
        }


def _text(amount: Decimal | None) -> str | None:
    return None if amount is None else f"{amount:.2f}"


class PurchaseFreeze(Base):
    """One freeze: from when an admin switched it on, with a reason, until it was lifted.

    `active` is true while the freeze is on and NULL once lifted; it is unique, so at
    most one freeze is on at a time (NULLs never collide), on both databases.
    """

    __tablename__ = "purchase_freezes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    active: Mapped[bool | None] = mapped_column(Boolean, unique=True, default=True)
    reason: Mapped[str] = mapped_column(Text)
    frozen_by: Mapped[str] = mapped_column(String(320))
    frozen_by_user_id: Mapped[uuid.UUID | None] = mapped_column(CanonicalUUID)
    frozen_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utc_now())
    lifted_by: Mapped[str | None] = mapped_column(String(320))
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
