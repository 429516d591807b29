"""DM copies of pause messages, and the App Home: who viewed it; indexes for a person's runs and open pauses.

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
        "kern_bot_pause_copies",
        sa.Column("requirement_id", sa.String(64), primary_key=True),
        sa.Column("recipient", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("ts", sa.String(32), nullable=False),
        sa.Column("posted_at", sa.Float, nullable=False),
    )
    op.create_table(
        "kern_bot_home_viewers",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("page", sa.Integer, nullable=False),
        sa.Column("opened_at", sa.Float, nullable=False),
    )
    op.create_index("ix_kern_bot_home_viewers_opened_at", "kern_bot_home_viewers", ["opened_at"])
    # The tables made before migrations may have been made by a later `create_all`, indexes included.
    op.create_index("ix_kern_bot_cards_started_by", "kern_bot_cards", ["started_by", "created_at"], if_not_exists=True)
    op.create_index("ix_kern_bot_pauses_status", "kern_bot_pauses", ["status", "posted_at"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_kern_bot_pauses_status", "kern_bot_pauses")
    op.drop_index("ix_kern_bot_cards_started_by", "kern_bot_cards")
    op.drop_table("kern_bot_home_viewers")
    op.drop_table("kern_bot_pause_copies")
