"""The ledger of purchases the executor made."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, CanonicalUUID, UTCDateTime, utc_now


class ProviderPurchase(Base):
    """One purchase, claimed before it is made, under a key no second purchase can take.

    The key is `<lineage root execution_id>:<item index>`, so every retry of a lineage
    maps an item to the same key. A row with no `purchase_id` is a claim whose purchase
    has not been confirmed (the worker may have died while the provider was buying).
    """

    __tablename__ = "provider_purchases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    # No cascade: a purchase is money spent; its execution cannot be deleted under it.
    execution_id: Mapped[uuid.UUID] = mapped_column(
        CanonicalUUID, ForeignKey("purchase_executions.execution_id"), index=True
    )
    item_index: Mapped[int] = mapped_column(Integer)
    provider: Mapped[str] = mapped_column(String(32))
    purchase_id: Mapped[str | None] = mapped_column(String(200))
    # The mode the purchase ran in: `simulate` or `live` (a dry run claims nothing).
    mode: Mapped[str] = mapped_column(String(16), server_default="simulate", default="simulate")
    purchased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utc_now())

    def __repr__(self) -> str:
        return f"<ProviderPurchase {self.idempotency_key} {self.purchase_id}>"
