"""Real providers: each account's purchase mode and cloud coordinates, and the mode
every purchase ran in.

- `cloud_accounts.purchase_mode` (`simulate` | `dry_run` | `live`): accounts that exist
  before this revision keep buying from the simulator they always bought from
  (`simulate`); an account added afterwards starts in `dry_run` (the column's default),
  and only an admin switches it to `live`.
- `cloud_accounts.aws_role_arn` (a role the AWS client assumes, with the account's
  `external_id` as the STS external id) and `cloud_accounts.azure_billing_scope`. The
  Azure subscription and the GCP project are the account's `external_id`. No secret is
  stored.
- `purchase_executions.purchase_mode`: the mode the row ran in, written when it starts.
- `provider_purchases.mode`: the mode of each purchase in the ledger (`simulate` or
  `live`; a dry run claims nothing). Existing purchases were all simulated.

Downgrading drops the columns (and with them the record of which purchases were live).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_MODES = "purchase_mode IN ('simulate', 'dry_run', 'live')"


def upgrade() -> None:
    with op.batch_alter_table("cloud_accounts") as batch:
        batch.add_column(
            sa.Column(
                "purchase_mode", sa.String(16), nullable=False, server_default="simulate"
            )
        )
        batch.add_column(sa.Column("aws_role_arn", sa.String(2048), nullable=True))
        batch.add_column(sa.Column("azure_billing_scope", sa.String(500), nullable=True))
    with op.batch_alter_table("cloud_accounts") as batch:
        batch.alter_column(
            "purchase_mode",
            existing_type=sa.String(16),
            existing_nullable=False,
            server_default="dry_run",
        )
        batch.create_check_constraint(op.f("ck_cloud_accounts_purchase_mode_known"), _MODES)
    op.add_column("purchase_executions", sa.Column("purchase_mode", sa.String(16), nullable=True))
    op.add_column(
        "provider_purchases",
        sa.Column("mode", sa.String(16), nullable=False, server_default="simulate"),
    )


def downgrade() -> None:
    op.drop_column("provider_purchases", "mode")
    op.drop_column("purchase_executions", "purchase_mode")
    with op.batch_alter_table("cloud_accounts") as batch:
        batch.drop_constraint(op.f("ck_cloud_accounts_purchase_mode_known"), type_="check")
        batch.drop_column("azure_billing_scope")
        batch.drop_column("aws_role_arn")
        batch.drop_column("purchase_mode")
