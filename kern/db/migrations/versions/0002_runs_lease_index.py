"""Index running runs by lease expiry: the recovery sweep's query (runs whose process died).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = {ix["name"] for ix in sa.inspect(op.get_bind()).get_indexes("kern_runs")}
    if "ix_kern_runs_lease" not in existing:  # a development build may have made it already
        op.create_index("ix_kern_runs_lease", "kern_runs", ["status", "lease_until"])


def downgrade() -> None:
    op.drop_index("ix_kern_runs_lease", table_name="kern_runs")
