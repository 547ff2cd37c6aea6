"""Approvals and the purchase ledger.

- `provider_purchases`: every purchase the executor makes, claimed first under its
  idempotency key `<lineage root>:<item index>` (unique), so a lineage never buys one
  item twice.
- `purchase_executions.approved_by_user_id`: the signed-in approver, whose permissions
  the executor checks again (NULL for an approval by email link).
- `approval_tokens.recipient`: the email's recipient, recorded as the approver or
  canceller when the link is used.

Plain column additions and a new table: nothing is rebuilt on SQLite.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UUID = sa.Uuid().with_variant(sa.String(36), "sqlite")


def _now() -> sa.TextClause:
    if op.get_bind().dialect.name == "sqlite":
        return sa.text("(strftime('%Y-%m-%d %H:%M:%f000', 'now'))")
    return sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.create_table(
        "provider_purchases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=100), nullable=False),
        sa.Column("execution_id", UUID, nullable=False),
        sa.Column("item_index", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("purchase_id", sa.String(length=200), nullable=True),
        sa.Column("purchased_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["purchase_executions.execution_id"],
            name=op.f("fk_provider_purchases_execution_id_purchase_executions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_purchases")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_provider_purchases_idempotency_key")),
    )
    op.create_index(
        op.f("ix_provider_purchases_execution_id"), "provider_purchases", ["execution_id"]
    )
    op.add_column("purchase_executions", sa.Column("approved_by_user_id", UUID, nullable=True))
    op.add_column("approval_tokens", sa.Column("recipient", sa.String(length=320), nullable=True))


def downgrade() -> None:
    # SQLite drops a plain column in place (3.35+): no table rebuild, triggers kept.
    op.drop_column("approval_tokens", "recipient")
    op.drop_column("purchase_executions", "approved_by_user_id")
    op.drop_index(op.f("ix_provider_purchases_execution_id"), table_name="provider_purchases")
    op.drop_table("provider_purchases")
