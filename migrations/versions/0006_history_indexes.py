"""History indexes: each history filter leads an index that ends in the default order.

The Purchase History list and `GET /api/history` show newest first (`created_at`, then
`execution_id`) and filter by status, cloud account, plan and creator. An index of
(filter column, created_at, execution_id) gives a filtered page as one index walk in
that order, at any table size; the single-column (and status, created_at) indexes it
replaces could find the rows, but then every matching row had to be sorted. The leading
column still serves each foreign key's ON DELETE SET NULL.

Indexes only: nothing is rebuilt, on either database.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLE = "purchase_executions"
# (new index, its leading column, the index it replaces, that index's columns)
REPLACED = (
    ("status", "status", "ix_purchase_executions_status_created_at", ["status", "created_at"]),
    (
        "account",
        "cloud_account_id",
        "ix_purchase_executions_cloud_account_id",
        ["cloud_account_id"],
    ),
    ("plan", "plan_id", "ix_purchase_executions_plan_id", ["plan_id"]),
    (
        "creator",
        "created_by_user_id",
        "ix_purchase_executions_created_by_user_id",
        ["created_by_user_id"],
    ),
)


def upgrade() -> None:
    for name, column, old_name, _old_columns in REPLACED:
        op.create_index(
            f"ix_purchase_executions_{name}_created_at_id",
            TABLE,
            [column, "created_at", "execution_id"],
        )
        op.drop_index(old_name, table_name=TABLE)


def downgrade() -> None:
    for name, _column, old_name, old_columns in REPLACED:
        op.create_index(old_name, TABLE, old_columns)
        op.drop_index(f"ix_purchase_executions_{name}_created_at_id", table_name=TABLE)
