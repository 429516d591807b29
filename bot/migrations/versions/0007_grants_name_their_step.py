"""Standing approvals name the step they were given at (`kern_bot_grants.step_name`).

A grant allows its tool only at the step where it was given, whose rules its giver answered by. Grants made
before this revision are given their step from their `grant` line in kern's audit log (it names the step,
and its data names the grant). A grant without that line keeps no step, and allows nothing: which step's
rules it was given under cannot be known, so it is not applied anywhere (it is still listed, to revoke).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    # A table made by a later `create_all` may have the column already.
    if "step_name" not in {column["name"] for column in inspector.get_columns("kern_bot_grants")}:
        op.add_column("kern_bot_grants", sa.Column("step_name", sa.String(256)))
    if not inspector.has_table("kern_audit"):
        return
    audit = sa.table("kern_audit", sa.column("step_name", sa.String), sa.column("decision"), sa.column("data"))
    grants = sa.table("kern_bot_grants", sa.column("id", sa.String), sa.column("step_name", sa.String))
    lines = bind.execute(sa.select(audit.c.step_name, audit.c.data).where(audit.c.decision == "grant"))
    for step, data in lines:
        grant_id = _data(data).get("id")
        if step and grant_id:
            bind.execute(
                grants.update().where(grants.c.id == grant_id, grants.c.step_name.is_(None)).values(step_name=step)
            )


def _data(value: Any) -> dict[str, Any]:
    """An audit line's data, as the driver gives it (parsed, or JSON text)."""
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def downgrade() -> None:
    with op.batch_alter_table("kern_bot_grants") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("step_name")
