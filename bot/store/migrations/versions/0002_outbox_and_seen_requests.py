"""The outbox (messages owed to Slack) and the requests already acted on (replay and retry dedupe).

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
    present = set(sa.inspect(op.get_bind()).get_table_names())  # a development build may have made them
    if "kern_bot_outbox" not in present:
        op.create_table(
            "kern_bot_outbox",
            sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
            sa.Column("run_id", sa.String(64), nullable=False),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("requirement_id", sa.String(64)),
            sa.Column("detail", sa.JSON),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("next_at", sa.Float, nullable=False),
            sa.Column("claimed_until", sa.Float),
            sa.Column("error", sa.Text),
            sa.Column("created_at", sa.Float, nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_kern_bot_outbox_due", "kern_bot_outbox", ["status", "next_at"])
        op.create_index("ix_kern_bot_outbox_run_id", "kern_bot_outbox", ["run_id"])
    if "kern_bot_seen_requests" not in present:
        op.create_table(
            "kern_bot_seen_requests",
            sa.Column("key", sa.String(64), nullable=False),
            sa.Column("seen_at", sa.Float, nullable=False),
            sa.PrimaryKeyConstraint("key"),
        )
        op.create_index("ix_kern_bot_seen_requests_seen_at", "kern_bot_seen_requests", ["seen_at"])


def downgrade() -> None:
    op.drop_table("kern_bot_seen_requests")
    op.drop_table("kern_bot_outbox")
