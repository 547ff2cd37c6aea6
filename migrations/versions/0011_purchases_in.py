"""Purchases in: spend limits per group, the global freeze, schedules.

- `spend_limits`: one per group (allowed accounts, providers and services; a maximum
  commitment per purchase and per day). A group without one is not limited.
- `purchase_freezes`: the history of freezes; `active` is true for the one that is on
  (unique: at most one), NULL once lifted.
- `purchase_executions.scheduled_for` (an approved row starts then, not before),
  `approved_at` (a group's spend per day counts what was approved that day) and
  `reminder_sent_at` (the reminder before a scheduled purchase fires goes once).

New tables and nullable columns: nothing existing is rebuilt; downgrading drops them.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UUID = sa.Uuid().with_variant(sa.String(36), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_MOMENT = sa.DateTime(timezone=True)


def _now() -> sa.TextClause:
    if op.get_bind().dialect.name == "sqlite":
        return sa.text("(strftime('%Y-%m-%d %H:%M:%f000', 'now'))")
    return sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.create_table(
        "spend_limits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("allowed_account_ids", _JSON, nullable=True),
        sa.Column("allowed_providers", _JSON, nullable=True),
        sa.Column("allowed_services", _JSON, nullable=True),
        sa.Column("max_per_purchase", sa.Numeric(14, 2), nullable=True),
        sa.Column("max_per_day", sa.Numeric(14, 2), nullable=True),
        sa.Column("updated_at", _MOMENT, server_default=_now(), nullable=False),
        sa.CheckConstraint(
            "max_per_purchase IS NULL OR max_per_purchase >= 0",
            name=op.f("ck_spend_limits_per_purchase"),
        ),
        sa.CheckConstraint(
            "max_per_day IS NULL OR max_per_day >= 0", name=op.f("ck_spend_limits_per_day")
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_spend_limits_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spend_limits")),
        sa.UniqueConstraint("group_id", name=op.f("uq_spend_limits_group_id")),
    )
    op.create_table(
        "purchase_freezes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("frozen_by", sa.String(320), nullable=False),
        sa.Column("frozen_by_user_id", UUID, nullable=True),
        sa.Column("frozen_at", _MOMENT, server_default=_now(), nullable=False),
        sa.Column("lifted_by", sa.String(320), nullable=True),
        sa.Column("lifted_at", _MOMENT, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchase_freezes")),
        sa.UniqueConstraint("active", name=op.f("uq_purchase_freezes_active")),
    )
    for column in ("scheduled_for", "approved_at", "reminder_sent_at"):
        op.add_column("purchase_executions", sa.Column(column, _MOMENT, nullable=True))


def downgrade() -> None:
    for column in ("reminder_sent_at", "approved_at", "scheduled_for"):
        op.drop_column("purchase_executions", column)
    op.drop_table("purchase_freezes")
    op.drop_table("spend_limits")
