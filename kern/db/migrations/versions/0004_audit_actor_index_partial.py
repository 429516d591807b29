"""Index only decisions that name who made them in ix_kern_audit_actor (the audit log by actor).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

The index held every decision, those with no actor too (a `req.confirm()` through the sync API names
nobody), so every claim wrote a page of it for an entry no query reads: the audit log by actor asks for
`actor = :actor`, which implies `actor IS NOT NULL`, so both databases answer it from the partial index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_HAS_ACTOR = "actor IS NOT NULL"


def upgrade() -> None:
    op.drop_index("ix_kern_audit_actor", table_name="kern_audit")
    op.create_index(
        "ix_kern_audit_actor",
        "kern_audit",
        ["actor"],
        sqlite_where=sa.text(_HAS_ACTOR),
        postgresql_where=sa.text(_HAS_ACTOR),
    )


def downgrade() -> None:
    op.drop_index("ix_kern_audit_actor", table_name="kern_audit")
    op.create_index("ix_kern_audit_actor", "kern_audit", ["actor"])
