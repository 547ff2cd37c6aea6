"""A time zone per user: `users.time_zone`, an IANA name ("Europe/Paris"), or NULL for
UTC. The panel shows times in it; the name is checked against the zone database when
it is set (`app.domain.time_zones`), not here.

A plain column addition: nothing is rebuilt on SQLite.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("time_zone", sa.String(64), nullable=True))


def downgrade() -> None:
    # SQLite drops a plain column in place (3.35+): no table rebuild.
    op.drop_column("users", "time_zone")
