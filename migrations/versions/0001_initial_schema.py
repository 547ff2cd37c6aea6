"""Initial schema: every table of the data model, and the seeded groups of section 2.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cloud_accounts',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('contact_email', sa.String(length=320), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.CheckConstraint("provider IN ('aws', 'azure', 'gcp')", name=op.f('ck_cloud_accounts_provider_known')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cloud_accounts'))
    )
    op.create_table('groups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('permissions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), server_default=sa.text("'[]'"), nullable=False),
    sa.Column('restricts_defaults', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_groups')),
    sa.UniqueConstraint('name', name=op.f('uq_groups_name'))
    )
    op.create_table('purchase_plans',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('auto_purchase', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('enabled', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('current_step', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('total_steps', sa.Integer(), server_default=sa.text('1'), nullable=False),
    sa.Column('percent_per_step', sa.Numeric(precision=5, scale=2), server_default=sa.text('100'), nullable=False),
    sa.Column('step_interval_days', sa.Integer(), server_default=sa.text('7'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.CheckConstraint('current_step >= 0 AND current_step <= total_steps', name=op.f('ck_purchase_plans_current_step_in_range')),
    sa.CheckConstraint('percent_per_step > 0 AND percent_per_step <= 100', name=op.f('ck_purchase_plans_percent_per_step_in_range')),
    sa.CheckConstraint('step_interval_days >= 1', name=op.f('ck_purchase_plans_step_interval_positive')),
    sa.CheckConstraint('total_steps >= 1', name=op.f('ck_purchase_plans_total_steps_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_purchase_plans'))
    )
    op.create_table('users',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('is_active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('failed_login_count', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.CheckConstraint('email = lower(email)', name=op.f('ck_users_email_lower_case')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email'))
    )
    op.create_table('audit_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('actor_user_id', sa.Uuid(), nullable=True),
    sa.Column('actor_email', sa.String(length=320), nullable=True),
    sa.Column('action', sa.String(length=100), nullable=False),
    sa.Column('execution_id', sa.Uuid(), nullable=True),
    sa.Column('details', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), server_default=sa.text("'{}'"), nullable=False),
    sa.ForeignKeyConstraint(['actor_user_id'], ['users.id'], name=op.f('fk_audit_events_actor_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    op.create_index('ix_audit_events_at', 'audit_events', ['at'], unique=False)
    op.create_index('ix_audit_events_execution_id_at', 'audit_events', ['execution_id', 'at'], unique=False)
    op.create_table('purchase_executions',
    sa.Column('execution_id', sa.Uuid(), nullable=False),
    sa.Column('plan_id', sa.Uuid(), nullable=True),
    sa.Column('step_number', sa.Integer(), server_default=sa.text('1'), nullable=False),
    sa.Column('cloud_account_id', sa.Uuid(), nullable=True),
    sa.Column('status', sa.String(length=32), server_default='pending', nullable=False),
    sa.Column('recommendations', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), server_default=sa.text("'[]'"), nullable=False),
    sa.Column('total_upfront_cost', sa.Numeric(precision=12, scale=2), server_default=sa.text('0'), nullable=False),
    sa.Column('estimated_savings', sa.Numeric(precision=12, scale=2), server_default=sa.text('0'), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_by_user_id', sa.Uuid(), nullable=True),
    sa.Column('approved_by', sa.String(length=320), nullable=True),
    sa.Column('cancelled_by', sa.String(length=320), nullable=True),
    sa.Column('retry_execution_id', sa.Uuid(), nullable=True),
    sa.Column('retry_attempt_n', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('approval_token_hash', sa.String(length=128), nullable=True),
    sa.Column('approval_token_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('notification_sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'approved', 'running', 'completed', 'partially_completed', 'failed', 'cancelled', 'expired')", name=op.f('ck_purchase_executions_status_known')),
    sa.CheckConstraint('retry_attempt_n >= 0', name=op.f('ck_purchase_executions_retry_attempt_n_non_negative')),
    sa.CheckConstraint('step_number >= 1', name=op.f('ck_purchase_executions_step_number_positive')),
    sa.ForeignKeyConstraint(['cloud_account_id'], ['cloud_accounts.id'], name=op.f('fk_purchase_executions_cloud_account_id_cloud_accounts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['users.id'], name=op.f('fk_purchase_executions_created_by_user_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['plan_id'], ['purchase_plans.id'], name=op.f('fk_purchase_executions_plan_id_purchase_plans'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['retry_execution_id'], ['purchase_executions.execution_id'], name=op.f('fk_purchase_executions_retry_execution_id_purchase_executions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('execution_id', name=op.f('pk_purchase_executions'))
    )
    op.create_index('ix_purchase_executions_cloud_account_id', 'purchase_executions', ['cloud_account_id'], unique=False)
    op.create_index('ix_purchase_executions_created_at_id', 'purchase_executions', ['created_at', 'execution_id'], unique=False)
    op.create_index('ix_purchase_executions_created_by_user_id', 'purchase_executions', ['created_by_user_id'], unique=False)
    op.create_index('ix_purchase_executions_plan_id', 'purchase_executions', ['plan_id'], unique=False)
    op.create_index('ix_purchase_executions_status_created_at', 'purchase_executions', ['status', 'created_at'], unique=False)
    op.create_index('uq_purchase_executions_retry_execution_id', 'purchase_executions', ['retry_execution_id'], unique=True, postgresql_where=sa.text('retry_execution_id IS NOT NULL'), sqlite_where=sa.text('retry_execution_id IS NOT NULL'))
    op.create_table('user_groups',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_user_groups_group_id_groups'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_groups_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'group_id', name=op.f('pk_user_groups'))
    )
    op.create_table('purchase_suppressions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('execution_id', sa.Uuid(), nullable=False),
    sa.Column('account_id', sa.String(length=200), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('service', sa.String(length=100), nullable=False),
    sa.Column('region', sa.String(length=100), nullable=False),
    sa.Column('resource_type', sa.String(length=200), nullable=False),
    sa.Column('engine', sa.String(length=100), server_default=sa.text("''"), nullable=False),
    sa.Column('suppressed_count', sa.Integer(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.CheckConstraint('suppressed_count > 0', name=op.f('ck_purchase_suppressions_suppressed_count_positive')),
    sa.ForeignKeyConstraint(['execution_id'], ['purchase_executions.execution_id'], name=op.f('fk_purchase_suppressions_execution_id_purchase_executions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_purchase_suppressions')),
    sa.UniqueConstraint('execution_id', 'account_id', 'provider', 'service', 'region', 'resource_type', 'engine', name='uq_purchase_suppressions_scope')
    )
    op.create_index('ix_purchase_suppressions_expires_at', 'purchase_suppressions', ['expires_at'], unique=False)
    _seed_groups()


# The groups every deployment starts with. `Read-only` restricts: a
# member whose only group it is has `view:purchases` alone.
SEEDED_GROUPS = [
    {"name": "Administrators", "permissions": ["admin:*"], "restricts_defaults": False},
    {
        "name": "Purchasers",
        "permissions": ["approve-any:purchases", "cancel-any:purchases", "retry-any:purchases"],
        "restricts_defaults": False,
    },
    {"name": "Read-only", "permissions": ["view:purchases"], "restricts_defaults": True},
]


def _seed_groups() -> None:
    groups = sa.table(
        "groups",
        sa.column("name", sa.String),
        sa.column("permissions", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
        sa.column("restricts_defaults", sa.Boolean),
    )
    op.bulk_insert(groups, SEEDED_GROUPS)


def downgrade() -> None:
    op.drop_index('ix_purchase_suppressions_expires_at', table_name='purchase_suppressions')
    op.drop_table('purchase_suppressions')
    op.drop_table('user_groups')
    op.drop_index('uq_purchase_executions_retry_execution_id', table_name='purchase_executions', postgresql_where=sa.text('retry_execution_id IS NOT NULL'), sqlite_where=sa.text('retry_execution_id IS NOT NULL'))
    op.drop_index('ix_purchase_executions_status_created_at', table_name='purchase_executions')
    op.drop_index('ix_purchase_executions_plan_id', table_name='purchase_executions')
    op.drop_index('ix_purchase_executions_created_by_user_id', table_name='purchase_executions')
    op.drop_index('ix_purchase_executions_created_at_id', table_name='purchase_executions')
    op.drop_index('ix_purchase_executions_cloud_account_id', table_name='purchase_executions')
    op.drop_table('purchase_executions')
    op.drop_index('ix_audit_events_execution_id_at', table_name='audit_events')
    op.drop_index('ix_audit_events_at', table_name='audit_events')
    op.drop_table('audit_events')
    op.drop_table('users')
    op.drop_table('purchase_plans')
    op.drop_table('groups')
    op.drop_table('cloud_accounts')
