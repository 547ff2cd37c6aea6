"""A retry keeps the lineage's creator and records who retried it.

- `purchase_executions.retried_by_user_id`: who asked for this attempt.
- Existing successors were written with the retrier as their creator, which let a
  retrier with `approve-own` approve someone else's purchase: each successor gets its
  lineage's creator back, and the retrier moves to `retried_by_user_id`. Pending rows
  written before this revision are decided under the new rule from now on.

A plain column addition: nothing is rebuilt on SQLite. Downgrading puts the retrier
back as the creator.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UUID = sa.Uuid().with_variant(sa.String(36), "sqlite")
_BATCH = 1000


def _executions() -> sa.Table:
    return sa.table(
        "purchase_executions",
        sa.column("execution_id", UUID),
        sa.column("created_by_user_id", UUID),
        sa.column("retried_by_user_id", UUID),
        sa.column("retry_execution_id", UUID),
    )


def upgrade() -> None:
    op.add_column("purchase_executions", sa.Column("retried_by_user_id", UUID, nullable=True))
    executions = _executions()
    bind = op.get_bind()
    links = bind.execute(
        sa.select(
            executions.c.execution_id,
            executions.c.created_by_user_id,
            executions.c.retry_execution_id,
        ).where(executions.c.retry_execution_id.is_not(None))
    ).all()
    predecessor_of = {row.retry_execution_id: row.execution_id for row in links}
    creators = {row.execution_id: row.created_by_user_id for row in links}
    successors = list(predecessor_of)
    # The successors' own creators (the retriers), read before anything is rewritten.
    retriers: dict[object, object] = {}
    for start in range(0, len(successors), _BATCH):
        chunk = successors[start : start + _BATCH]
        for row in bind.execute(
            sa.select(executions.c.execution_id, executions.c.created_by_user_id).where(
                executions.c.execution_id.in_(chunk)
            )
        ):
            retriers[row.execution_id] = row.created_by_user_id

    def lineage_creator(execution_id: object) -> object:
        seen = set()
        while execution_id in predecessor_of and execution_id not in seen:
            seen.add(execution_id)
            execution_id = predecessor_of[execution_id]
        return creators.get(execution_id)

    rows = [
        {
            "successor": successor,
            "creator": lineage_creator(successor),
            "retrier": retriers[successor],
        }
        for successor in successors
        if successor in retriers
    ]
    if rows:
        bind.execute(
            sa.update(executions)
            .where(executions.c.execution_id == sa.bindparam("successor"))
            .values(
                created_by_user_id=sa.bindparam("creator"),
                retried_by_user_id=sa.bindparam("retrier"),
            ),
            rows,
        )


def downgrade() -> None:
    executions = _executions()
    op.execute(
        sa.update(executions)
        .where(executions.c.retried_by_user_id.is_not(None))
        .values(created_by_user_id=executions.c.retried_by_user_id)
    )
    # SQLite drops a plain column in place (3.35+): no table rebuild, triggers kept.
    op.drop_column("purchase_executions", "retried_by_user_id")
