"""Notification channels and their outbox.

- `notification_channels`: where alerts go (Slack, Teams, a signed webhook, email),
  global or for one cloud account, with the events each hears.
- `channel_messages`: the outbox, one row per message owed to a channel, unique per
  channel and dedupe key (owing it twice is harmless), with the lease columns of the
  task that sends it.

Two new tables: nothing existing is rebuilt; downgrading drops them.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
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
        "notification_channels",
        sa.Column("id", UUID, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("cloud_account_id", UUID, nullable=True),
        sa.Column("events", _JSON, server_default=sa.text("'[]'"), nullable=False),
        sa.Column("secret", sa.String(500), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_at", _MOMENT, server_default=_now(), nullable=False),
        sa.Column("updated_at", _MOMENT, server_default=_now(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('slack', 'teams', 'webhook', 'email')",
            name=op.f("ck_notification_channels_kind_known"),
        ),
        sa.ForeignKeyConstraint(
            ["cloud_account_id"],
            ["cloud_accounts.id"],
            name=op.f("fk_notification_channels_cloud_account_id_cloud_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_channels")),
        sa.UniqueConstraint("name", name=op.f("uq_notification_channels_name")),
    )
    op.create_index(
        "ix_notification_channels_enabled_cloud_account_id",
        "notification_channels",
        ["enabled", "cloud_account_id"],
    )
    op.create_table(
        "channel_messages",
        sa.Column("id", UUID, nullable=False),
        sa.Column("channel_id", UUID, nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("dedupe_key", sa.String(200), nullable=False),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), server_default="queued", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("due_at", _MOMENT, server_default=_now(), nullable=False),
        sa.Column("sent_at", _MOMENT, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", _MOMENT, server_default=_now(), nullable=False),
        sa.Column("lease_owner", sa.String(155), nullable=True),
        sa.Column("lease_expires_at", _MOMENT, nullable=True),
        sa.CheckConstraint(
            "state IN ('queued', 'sending', 'sent', 'failed')",
            name=op.f("ck_channel_messages_state_known"),
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["notification_channels.id"],
            name=op.f("fk_channel_messages_channel_id_notification_channels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_messages")),
        sa.UniqueConstraint(
            "channel_id", "dedupe_key", name=op.f("uq_channel_messages_channel_id_dedupe_key")
        ),
    )
    op.create_index("ix_channel_messages_state_due_at", "channel_messages", ["state", "due_at"])


def downgrade() -> None:
    op.drop_index("ix_channel_messages_state_due_at", table_name="channel_messages")
    op.drop_table("channel_messages")
    op.drop_index(
        "ix_notification_channels_enabled_cloud_account_id", table_name="notification_channels"
    )
    op.drop_table("notification_channels")
