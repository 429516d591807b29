"""Votes on pauses that need several people (N of M), and pauses handed over to someone else.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kern_bot_votes",
        sa.Column("requirement_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("approve", sa.Boolean, nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_table(
        "kern_bot_handovers",
        sa.Column("requirement_id", sa.String(64), primary_key=True),
        sa.Column("to_user", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("by_user", sa.String(64), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("kern_bot_handovers")
    op.drop_table("kern_bot_votes")
