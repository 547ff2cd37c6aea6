"""Retry requests: who asked to retry which execution, and how the worker settled it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "retry_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("execution_id", sa.Uuid(), nullable=False),
        sa.Column("requested_by_user_id", sa.Uuid(), nullable=True),
        sa.Column("requested_by_email", sa.String(length=320), nullable=False),
        sa.Column("force", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("state", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("successor_execution_id", sa.Uuid(), nullable=True),
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


def downgrade() -> None:
    op.drop_index("ix_retry_requests_requested_by_user_id", table_name="retry_requests")
    op.drop_index("ix_retry_requests_execution_id_state", table_name="retry_requests")
    op.drop_table("retry_requests")
