"""Failures by cause.

- `purchase_executions.failure_signature`: the signature of a failed (or partially
  completed) row's error (`app.domain.causes.signature`), written by the move that fails
  it; backfilled here for the rows that failed before. Indexed with status (the causes
  page groups the retryable rows by it) and, as every history filter is, leading an
  index that ends in the list's order (created_at, execution_id).
- An index of (estimated_savings, created_at, execution_id): Purchase History's sort by
  savings at risk, with the list's tie-breakers, is one index walk.
- `failure_cause_fixes`: who marked a cause fixed, when, with what note.

A new nullable column, indexes and a new table: nothing existing is rebuilt; the
backfill reads the failed rows in batches. Downgrading drops them.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.domain.causes import signature

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

TABLE = "purchase_executions"
UUID = sa.Uuid().with_variant(sa.String(36), "sqlite")
_MOMENT = sa.DateTime(timezone=True)
_BATCH = 1000
# The statuses a retry starts from (`app.domain.retry.RETRYABLE`) as they are today.
_FAILURES = ("failed", "partially_completed")
_INDEXES = (
    (
        "ix_purchase_executions_cause_created_at_id",
        ["failure_signature", "created_at", "execution_id"],
    ),
    (
        "ix_purchase_executions_savings_created_at_id",
        ["estimated_savings", "created_at", "execution_id"],
    ),
    ("ix_purchase_executions_status_failure_signature", ["status", "failure_signature"]),
)


def _now() -> sa.TextClause:
    if op.get_bind().dialect.name == "sqlite":
        return sa.text("(strftime('%Y-%m-%d %H:%M:%f000', 'now'))")
    return sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.add_column(TABLE, sa.Column("failure_signature", sa.String(200), nullable=True))
    _backfill()
    for name, columns in _INDEXES:
        op.create_index(name, TABLE, columns)
    op.create_table(
        "failure_cause_fixes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("signature", sa.String(200), nullable=False),
        sa.Column("fixed_by_user_id", UUID, nullable=True),
        sa.Column("fixed_by_email", sa.String(320), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("fixed_at", _MOMENT, server_default=_now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_failure_cause_fixes")),
    )
    op.create_index(
        "ix_failure_cause_fixes_signature_fixed_at",
        "failure_cause_fixes",
        ["signature", "fixed_at"],
    )


def _backfill() -> None:
    """Each failed row's signature, computed by the same function the app uses, a batch
    at a time in the order of the primary key (keyset, so no row is read twice)."""
    executions = sa.table(
        TABLE,
        sa.column("execution_id", UUID),
        sa.column("status", sa.String),
        sa.column("error", sa.Text),
        sa.column("failure_signature", sa.String),
    )
    bind = op.get_bind()
    after = None
    while True:
        query = (
            sa.select(executions.c.execution_id, executions.c.error)
            .where(executions.c.status.in_(_FAILURES))
            .order_by(executions.c.execution_id)
            .limit(_BATCH)
        )
        if after is not None:
            query = query.where(executions.c.execution_id > after)
        rows = bind.execute(query).all()
        if not rows:
            return
        bind.execute(
            sa.update(executions)
            .where(executions.c.execution_id == sa.bindparam("row_id"))
            .values(failure_signature=sa.bindparam("signature")),
            [{"row_id": row.execution_id, "signature": signature(row.error)} for row in rows],
        )
        after = rows[-1].execution_id


def downgrade() -> None:
    op.drop_index("ix_failure_cause_fixes_signature_fixed_at", table_name="failure_cause_fixes")
    op.drop_table("failure_cause_fixes")
    for name, _columns in reversed(_INDEXES):
        op.drop_index(name, table_name=TABLE)
    # SQLite drops a plain column in place (3.35+): no table rebuild, triggers kept.
    op.drop_column(TABLE, "failure_signature")
