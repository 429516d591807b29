"""More than one workspace: a team on the rows a request reaches a run by; Slack installations, OAuth states.

For HTTP mode's OAuth install. Existing rows get team '' (the single workspace of token mode), so a
database upgraded from token mode keeps working unchanged in token mode.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TEAM_TABLES = (
    "kern_bot_cards",
    "kern_bot_pauses",
    "kern_bot_pause_copies",
    "kern_bot_home_viewers",
    "kern_bot_grants",
    "kern_bot_outbox",
    "kern_bot_tool_decisions",
    "kern_bot_votes",
    "kern_bot_handovers",
    "kern_bot_timers",
    "kern_bot_escalations",
)


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for table in TEAM_TABLES:
        # The tables made before migrations may have been made by a later `create_all`, this column included.
        if "team_id" in {column["name"] for column in inspector.get_columns(table)}:
            continue
        op.add_column(table, sa.Column("team_id", sa.String(64), nullable=False, server_default=""))
    op.create_table(
        "kern_bot_installations",
        sa.Column("enterprise_id", sa.String(64), primary_key=True),
        sa.Column("team_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("team_key", sa.String(64), nullable=False),
        sa.Column("is_enterprise_install", sa.Boolean, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("installed_at", sa.Float, nullable=False),
    )
    op.create_index("ix_kern_bot_installations_team_key", "kern_bot_installations", ["team_key", "user_id"])
    op.create_table(
        "kern_bot_oauth_states",
        sa.Column("state", sa.String(64), primary_key=True),
        sa.Column("expire_at", sa.Float, nullable=False),
    )
    op.create_index("ix_kern_bot_oauth_states_expire_at", "kern_bot_oauth_states", ["expire_at"])


def downgrade() -> None:
    op.drop_table("kern_bot_oauth_states")
    op.drop_table("kern_bot_installations")
    for table in reversed(TEAM_TABLES):
        with op.batch_alter_table(table) as batch:  # SQLite drops a column by copying the table
            batch.drop_column("team_id")
