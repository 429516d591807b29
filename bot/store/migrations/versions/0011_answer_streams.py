"""Streamed answers: the messages a conversation's answer streams into, recorded as each stream starts.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kern_bot_streams",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("ts", sa.String(32), primary_key=True),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("team_id", sa.String(64), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("kern_bot_streams")
