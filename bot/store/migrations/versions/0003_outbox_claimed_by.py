"""Outbox rows name the process that holds them.

The process whose transaction owes a message holds it from the start and sends it without a claim
transaction.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("kern_bot_outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(32)))


def downgrade() -> None:
    with op.batch_alter_table("kern_bot_outbox") as batch:
        batch.drop_column("claimed_by")
