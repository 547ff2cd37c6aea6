"""Bulk retries: `retry_batches` and one `retry_batch_items` row per execution asked for.

Two new tables: nothing existing is rebuilt.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UUID = sa.Uuid().with_variant(sa.String(36), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _now() -> sa.TextClause:
    if op.get_bind().dialect.name == "sqlite":
        return sa.text("(strftime('%Y-%m-%d %H:%M:%f000', 'now'))")
    return sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.create_table(
        "retry_batches",
        sa.Column("id", UUID, nullable=False),
        sa.Column("requested_by_user_id", UUID, nullable=True),
        sa.Column("requested_by_email", sa.String(length=320), nullable=False),
        sa.Column("force", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("selection", _JSON, server_default=sa.text("'{}'"), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_user_id"],
            ["users.id"],
            name=op.f("fk_retry_batches_requested_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retry_batches")),
    )
    op.create_index(
        "ix_retry_batches_requested_by_user_id", "retry_batches", ["requested_by_user_id"]
    )
    op.create_table(
        "retry_batch_items",
        sa.Column("batch_id", UUID, nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("execution_id", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("successor_execution_id", UUID, nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("details", _JSON, server_default=sa.text("'{}'"), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('queued', 'succeeded', 'rejected', 'failed')",
            name=op.f("ck_retry_batch_items_state_known"),
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["retry_batches.id"],
            name=op.f("fk_retry_batch_items_batch_id_retry_batches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["successor_execution_id"],
            ["purchase_executions.execution_id"],
            name=op.f("fk_retry_batch_items_successor_execution_id_purchase_executions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("batch_id", "position", name=op.f("pk_retry_batch_items")),
    )
    op.create_index(
        "ix_retry_batch_items_batch_id_chunk", "retry_batch_items", ["batch_id", "chunk"]
    )
    op.create_index("ix_retry_batch_items_state", "retry_batch_items", ["state"])


def downgrade() -> None:
    op.drop_index("ix_retry_batch_items_state", table_name="retry_batch_items")
    op.drop_index("ix_retry_batch_items_batch_id_chunk", table_name="retry_batch_items")
    op.drop_table("retry_batch_items")
    op.drop_index("ix_retry_batches_requested_by_user_id", table_name="retry_batches")
    op.drop_table("retry_batches")
