"""The `provider_purchases` ledger: one row per purchase the product may make, under
its idempotency key (`<lineage root>:<item index>`, `app.domain.purchasing.ledger_key`).

A purchase is claimed before it is bought (`claim`: the unique key makes two claims of
one purchase impossible), recorded once the provider names what it bought (`record`:
the first record stands), and released when the provider bought nothing (`release`),
so a retry may buy it. A claim with no purchase recorded is a purchase whose outcome is
unknown; the executor asks the provider before buying it again.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.domain.providers import PurchaseMode
from app.models import ProviderPurchase


def claim(
    session: Session,
    key: str,
    execution_id: uuid.UUID,
    index: int,
    provider: str,
    mode: PurchaseMode,
) -> tuple[ProviderPurchase, bool]:
    """Insert the ledger row for `key` unless it exists; the row, and whether this call
    made it. The unique key makes two claims of one purchase impossible."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    made = session.execute(
        insert(ProviderPurchase)
        .values(
            idempotency_key=key,
            execution_id=execution_id,
            item_index=index,
            provider=provider,
            mode=mode.value,
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(ProviderPurchase.id)
    ).first()
    claim = session.scalars(
        select(ProviderPurchase)
        .where(ProviderPurchase.idempotency_key == key)
        .execution_options(populate_existing=True)
    ).one()
    return claim, made is not None


def record(session: Session, key: str, purchase_id: str, *, now: datetime) -> str:
    """Record what the provider bought under `key`; if another worker recorded it first
    (the same idempotent purchase), theirs stands. Whatever the row's status: money was
    spent."""
    session.execute(
        update(ProviderPurchase)
        .where(ProviderPurchase.idempotency_key == key, ProviderPurchase.purchase_id.is_(None))
        .values(purchase_id=purchase_id, purchased_at=now)
    )
    recorded = session.scalar(
        select(ProviderPurchase.purchase_id).where(ProviderPurchase.idempotency_key == key)
    )
    return recorded or purchase_id


def release(session: Session, key: str) -> None:
    """The provider bought nothing: drop the claim, so a retry may buy the item."""
    session.execute(
        delete(ProviderPurchase).where(
            ProviderPurchase.idempotency_key == key, ProviderPurchase.purchase_id.is_(None)
        )
    )
