"""One retry pipeline, and leases on claimed work.

- A single retry becomes a batch of one: each `retry_requests` row moves to
  `retry_batches` (same id, `kind` "single") with one item, and the table goes. A
  request's `retry_attempt_n` is its successor's; its `task_id` is not needed any more
  (the sweep queues a lost request again from the database).
- `retry_batch_items`, `purchase_executions` and `notifications` get `lease_owner` and
  `lease_expires_at`: who holds the work and until when. Queued items come over with no
  lease, so the sweep queues them again at once: nothing in flight is lost.

Plain column additions and INSERT ... SELECT: nothing is rebuilt on SQLite. Downgrading
moves single batches back to `retry_requests` and drops the new columns.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

UUID = sa.Uuid().with_variant(sa.String(36), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
LEASED = ("retry_batch_items", "purchase_executions", "notifications")


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    for table in LEASED:
        op.add_column(table, sa.Column("lease_owner", sa.String(155), nullable=True))
        op.add_column(
            table, sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
    op.add_column(
        "retry_batches",
        sa.Column("kind", sa.String(16), server_default="bulk", nullable=False),
    )
    # A claim in flight when the worker stopped for the upgrade lapses now.
    op.execute("UPDATE notifications SET lease_expires_at = claimed_at WHERE state = 'sending'")
    selection = (
        "json_object('execution_id', execution_id)"
        if _is_sqlite()
        else "jsonb_build_object('execution_id', execution_id::text)"
    )
    op.execute(
        "INSERT INTO retry_batches"
        " (id, requested_by_user_id, requested_by_email, force, total, selection,"
        " created_at, kind)"
        f" SELECT id, requested_by_user_id, requested_by_email, force, 1, {selection},"
        " created_at, 'single' FROM retry_requests"
    )
    op.execute(
        "INSERT INTO retry_batch_items"
        " (batch_id, position, chunk, execution_id, state, successor_execution_id,"
        " status_code, error, details, settled_at)"
        " SELECT id, 0, 0, CAST(execution_id AS VARCHAR(100)), state,"
        " successor_execution_id, refusal_status, error, details,"
        " CASE WHEN state = 'queued' THEN NULL ELSE finished_at END FROM retry_requests"
    )
    op.drop_index("ix_retry_requests_requested_by_user_id", table_name="retry_requests")
    op.drop_index("ix_retry_requests_execution_id_state", table_name="retry_requests")
    op.drop_table("retry_requests")


def downgrade() -> None:
    op.create_table(
        "retry_requests",
        sa.Column("id", UUID, nullable=False),
        sa.Column("execution_id", UUID, nullable=False),
        sa.Column("requested_by_user_id", UUID, nullable=True),
        sa.Column("requested_by_email", sa.String(length=320), nullable=False),
        sa.Column("force", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("state", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("successor_execution_id", UUID, nullable=True),
        sa.Column("retry_attempt_n", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("refusal_status", sa.Integer(), nullable=True),
        sa.Column("details", _JSON, server_default=sa.text("'{}'"), nullable=False),
        sa.Column("task_id", sa.String(length=155), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('queued', 'succeeded', 'rejected', 'failed')",
            name=op.f("ck_retry_requests_state_known"),
        ),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["purchase_executions.execution_id"],
            name=op.f("fk_retry_requests_execution_id_purchase_executions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_user_id"],
            ["users.id"],
            name=op.f("fk_retry_requests_requested_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["successor_execution_id"],
            ["purchase_executions.execution_id"],
            name=op.f("fk_retry_requests_successor_execution_id_purchase_executions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retry_requests")),
    )
    op.create_index(
        "ix_retry_requests_execution_id_state", "retry_requests", ["execution_id", "state"]
    )
    op.create_index(
        "ix_retry_requests_requested_by_user_id", "retry_requests", ["requested_by_user_id"]
    )
    execution_id = "i.execution_id" if _is_sqlite() else "CAST(i.execution_id AS uuid)"
    op.execute(
        "INSERT INTO retry_requests"
        " (id, execution_id, requested_by_user_id, requested_by_email, force, state,"
        " successor_execution_id, retry_attempt_n, error, refusal_status, details,"
        " created_at, updated_at, finished_at)"
        f" SELECT b.id, {execution_id}, b.requested_by_user_id, b.requested_by_email,"
        " b.force, i.state, i.successor_execution_id,"
        " (SELECT s.retry_attempt_n FROM purchase_executions s"
        "  WHERE s.execution_id = i.successor_execution_id),"
        " i.error, i.status_code, i.details, b.created_at,"
        " COALESCE(i.settled_at, b.created_at), i.settled_at"
        " FROM retry_batches b JOIN retry_batch_items i ON i.batch_id = b.id"
        " WHERE b.kind = 'single'"
    )
    op.execute(
        "DELETE FROM retry_batch_items WHERE batch_id IN"
        " (SELECT id FROM retry_batches WHERE kind = 'single')"
    )
    op.execute("DELETE FROM retry_batches WHERE kind = 'single'")
    op.drop_column("retry_batches", "kind")
    for table in reversed(LEASED):
        op.drop_column(table, "lease_expires_at")
        op.drop_column(table, "lease_owner")
