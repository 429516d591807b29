"""Baseline: kern's tables as they were before migrations (kern_meta schema_version 1).

Revision ID: 0001
Revises:
Create Date: 2025-11-23

A frozen copy of kern/db/schema.py at that time: later changes to the tables come as new revisions,
never as edits here. Databases made before migrations are stamped with this revision at first use.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    meta = op.create_table(
        "kern_meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.bulk_insert(meta, [{"key": "schema_version", "value": "1"}])
    op.create_table(
        "kern_sessions",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("workflow_name", sa.String(256), nullable=True),
        sa.Column("user_id", sa.String(256), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("session_id"),
    )
    op.create_table(
        "kern_runs",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("workflow_name", sa.String(256), nullable=True),
        sa.Column("kind", sa.String(16), server_default="workflow", nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("requirement_id", sa.String(64), nullable=True),
        sa.Column("deadline", sa.Float(), nullable=True),
        sa.Column("output", sa.JSON(), nullable=False),
        sa.Column("journal", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("run_id"),
    )
    op.create_index("ix_kern_runs_due", "kern_runs", ["status", "deadline"])
    op.create_index("ix_kern_runs_session_id", "kern_runs", ["session_id"])
    op.create_table(
        "kern_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("requirement_id", sa.String(64), nullable=True),
        sa.Column("workflow_name", sa.String(256), nullable=True),
        sa.Column("step_name", sa.String(256), nullable=True),
        sa.Column("kind", sa.String(32), nullable=True),
        sa.Column("actor", sa.String(256), nullable=True),
        sa.Column("decision", sa.String(32), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_kern_audit_actor", "kern_audit", ["actor"])
    op.create_index("ix_kern_audit_run_id", "kern_audit", ["run_id"])
    op.create_table(
        "kern_approvals",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("requirement_id", sa.String(64), nullable=True),
        sa.Column("agent_name", sa.String(256), nullable=True),
        sa.Column("tool_name", sa.String(256), nullable=False),
        sa.Column("tool_args", sa.JSON(), nullable=True),
        sa.Column("approval_type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_at", sa.Float(), nullable=False),
        sa.Column("resolved_at", sa.Float(), nullable=True),
        sa.Column("resolved_by", sa.String(256), nullable=True),
        sa.Column("resolution_data", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_kern_approvals_resolved_by", "kern_approvals", ["resolved_by"])
    op.create_index("ix_kern_approvals_run_id", "kern_approvals", ["run_id"])
    op.create_index("ix_kern_approvals_status", "kern_approvals", ["status", "requested_at"])


def downgrade() -> None:
    for table in ("kern_approvals", "kern_audit", "kern_runs", "kern_sessions", "kern_meta"):
        op.drop_table(table)
