"""Digests: one approval email per person for a bulk retry.

- `notifications.batch_id`: the bulk retry whose digest carries this approval email
  (NULL: the email goes on its own, as a single retry's or a new purchase's does).
  Indexed with kind and state: the digest's task claims a batch's emails together.
- `digest_links`: the hash of each digest's "review and approve selected" link, with the
  batch and the recipient it opens the page for, and its expiry.

A new nullable column and a new table: nothing existing is rebuilt; downgrading drops
them.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

UUID = sa.Uuid().with_variant(sa.String(36), "sqlite")
_MOMENT = sa.DateTime(timezone=True)


def _now() -> sa.TextClause:
    if op.get_bind().dialect.name == "sqlite":
        return sa.text("(strftime('%Y-%m-%d %H:%M:%f000', 'now'))")
    return sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.add_column("notifications", sa.Column("batch_id", UUID, nullable=True))
    op.create_index(
        "ix_notifications_batch_id_kind_state",
        "notifications",
        ["batch_id", "kind", "state"],
    )
    op.create_table(
        "digest_links",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("batch_id", UUID, nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("expires_at", _MOMENT, nullable=False),
        sa.Column("created_at", _MOMENT, server_default=_now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["retry_batches.id"],
            name=op.f("fk_digest_links_batch_id_retry_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_digest_links")),
    )


def downgrade() -> None:
    op.drop_table("digest_links")
    op.drop_index("ix_notifications_batch_id_kind_state", table_name="notifications")
    op.drop_column("notifications", "batch_id")
