"""Baseline: kern-bot's tables as they were before migrations.

Revision ID: 0001
Revises:
Create Date: 2025-11-23

A frozen copy of bot/store/__init__.py's tables at that time: later changes come as new revisions, never as
edits here. Databases made before migrations are stamped with this revision at first use.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kern_bot_cards",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("workflow", sa.String(256), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("ts", sa.String(32), nullable=False),
        sa.Column("started_by", sa.String(64), nullable=False),
        sa.Column("input", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.create_table(
        "kern_bot_pauses",
        sa.Column("requirement_id", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("ts", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("posted_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("requirement_id"),
    )
    op.create_index("ix_kern_bot_pauses_run_id", "kern_bot_pauses", ["run_id"])
    op.create_table(
        "kern_bot_tool_decisions",
        sa.Column("requirement_id", sa.String(64), nullable=False),
        sa.Column("call_index", sa.Integer(), nullable=False),
        sa.Column("decision", sa.JSON(), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("requirement_id", "call_index"),
    )


def downgrade() -> None:
    for table in ("kern_bot_tool_decisions", "kern_bot_pauses", "kern_bot_cards"):
        op.drop_table(table)
