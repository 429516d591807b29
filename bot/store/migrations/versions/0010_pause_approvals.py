"""The `@approval` records a pause waits on, so a record resolved through kern's approvals API moves its run.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kern_bot_pause_approvals",
        sa.Column("approval_id", sa.String(64), primary_key=True),
        sa.Column("requirement_id", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("team_id", sa.String(64), nullable=False, server_default=""),
    )
    op.create_index("ix_kern_bot_pause_approvals_requirement_id", "kern_bot_pause_approvals", ["requirement_id"])
    op.create_index("ix_kern_bot_pause_approvals_run_id", "kern_bot_pause_approvals", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_kern_bot_pause_approvals_run_id", table_name="kern_bot_pause_approvals")
    op.drop_index("ix_kern_bot_pause_approvals_requirement_id", table_name="kern_bot_pause_approvals")
    op.drop_table("kern_bot_pause_approvals")
