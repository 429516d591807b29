"""Acknowledged work kept durable: a click or a `/kern run` is written before Slack is answered.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kern_bot_jobs",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_at", sa.Float, nullable=False),
        sa.Column("claimed_by", sa.String(32)),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_kern_bot_jobs_due", "kern_bot_jobs", ["status", "next_at"])


def downgrade() -> None:
    op.drop_index("ix_kern_bot_jobs_due", table_name="kern_bot_jobs")
    op.drop_table("kern_bot_jobs")
