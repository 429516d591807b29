"""Votes (N of M), hand-overs, standing approvals of tool calls, and the timers of reminders and escalations.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
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
    op.create_table(
        "kern_bot_grants",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("workflow", sa.String(256), nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("tool_name", sa.String(256), nullable=False),
        sa.Column("granted_by", sa.String(64), nullable=False),
        sa.Column("granted_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float),
        sa.Column("revoked_by", sa.String(64)),
        sa.Column("revoked_at", sa.Float),
    )
    op.create_index("ix_kern_bot_grants_tool", "kern_bot_grants", ["tool_name", "workflow"])
    op.create_table(
        "kern_bot_timers",
        sa.Column("requirement_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("due_at", sa.Float, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("done_at", sa.Float),
    )
    op.create_index("ix_kern_bot_timers_due", "kern_bot_timers", ["done_at", "due_at"])
    op.create_table(
        "kern_bot_escalations",
        sa.Column("requirement_id", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("kern_bot_escalations")
    op.drop_table("kern_bot_timers")
    op.drop_table("kern_bot_grants")
    op.drop_table("kern_bot_handovers")
    op.drop_table("kern_bot_votes")
