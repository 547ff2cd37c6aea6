"""Session versions, one store for failed sign-ins, the email outbox, approval tokens.

- `users.session_version` is part of every session cookie: raising it (sign-out, a new
  password) ends every earlier session of the user.
- `login_attempts` counts failed sign-ins of every email, with or without an account,
  so both lock out alike; it replaces `users.failed_login_count` and `locked_until`
  (a lock in force when this runs is forgotten: they last 15 minutes).
- `notifications` is the outbox of emails owed, each settled once.
- `approval_tokens` holds the hash of every approve and cancel link sent.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UUID = sa.Uuid().with_variant(sa.String(36), "sqlite")


def _now() -> sa.TextClause:
    if op.get_bind().dialect.name == "sqlite":
        return sa.text("(strftime('%Y-%m-%d %H:%M:%f000', 'now'))")
    return sa.text("CURRENT_TIMESTAMP")


def _timestamp(name: str, **options: object) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), **options)


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("session_version", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.drop_column("users", "failed_login_count")
    op.drop_column("users", "locked_until")

    op.create_table(
        "login_attempts",
        sa.Column("email_key", sa.String(length=64), nullable=False),
        sa.Column("failed_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _timestamp("last_failed_at", nullable=True),
        _timestamp("locked_until", nullable=True),
        sa.PrimaryKeyConstraint("email_key", name=op.f("pk_login_attempts")),
    )
    op.create_table(
        "notifications",
        sa.Column("id", UUID, nullable=False),
        sa.Column("execution_id", UUID, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        _timestamp("due_at", server_default=_now(), nullable=False),
        _timestamp("claimed_at", nullable=True),
        _timestamp("sent_at", nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _timestamp("created_at", server_default=_now(), nullable=False),
        _timestamp("updated_at", server_default=_now(), nullable=False),
        sa.CheckConstraint(
            "state IN ('queued', 'sending', 'sent', 'failed', 'skipped')",
            name=op.f("ck_notifications_state_known"),
        ),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["purchase_executions.execution_id"],
            name=op.f("fk_notifications_execution_id_purchase_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("execution_id", "kind", name=op.f("uq_notifications_execution_id_kind")),
    )
    op.create_index("ix_notifications_state_due_at", "notifications", ["state", "due_at"])
    op.create_table(
        "approval_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("execution_id", UUID, nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        _timestamp("expires_at", nullable=False),
        _timestamp("used_at", nullable=True),
        _timestamp("created_at", server_default=_now(), nullable=False),
        sa.CheckConstraint(
            "action IN ('approve', 'cancel')", name=op.f("ck_approval_tokens_action_known")
        ),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["purchase_executions.execution_id"],
            name=op.f("fk_approval_tokens_execution_id_purchase_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_approval_tokens")),
    )
    op.create_index("ix_approval_tokens_execution_id", "approval_tokens", ["execution_id"])


def downgrade() -> None:
    op.drop_index("ix_approval_tokens_execution_id", table_name="approval_tokens")
    op.drop_table("approval_tokens")
    op.drop_index("ix_notifications_state_due_at", table_name="notifications")
    op.drop_table("notifications")
    op.drop_table("login_attempts")
    op.add_column(
        "users",
        sa.Column("failed_login_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column("users", _timestamp("locked_until", nullable=True))
    op.drop_column("users", "session_version")
