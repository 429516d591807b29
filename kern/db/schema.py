"""kern's tables: one row per session, one per run (its active pause included), one per decision."""

from __future__ import annotations

import sqlalchemy as sa

SCHEMA_VERSION = 1

metadata = sa.MetaData()

meta = sa.Table(
    "kern_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)

sessions = sa.Table(
    "kern_sessions",
    metadata,
    sa.Column("session_id", sa.String(64), primary_key=True),
    sa.Column("workflow_name", sa.String(256)),
    sa.Column("user_id", sa.String(256)),
    sa.Column("created_at", sa.Float, nullable=False),
)

runs = sa.Table(
    "kern_runs",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False, unique=True),
    sa.Column("session_id", sa.String(64), nullable=False, index=True),
    sa.Column("workflow_name", sa.String(256)),
    sa.Column("kind", sa.String(16), nullable=False, server_default="workflow"),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("lease_until", sa.Float),
    # The active pause of a PAUSED run, and its deadline (None: no deadline).
    sa.Column("requirement_id", sa.String(64)),
    sa.Column("deadline", sa.Float),
    sa.Column("output", sa.JSON, nullable=False),
    sa.Column("journal", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    # The deadline sweeper's query: paused runs whose deadline has passed. Partial: a run without a deadline
    # (most) has no entry, so its pause and resume write no page of this index (see migration 0003).
    sa.Index(
        "ix_kern_runs_due",
        "status",
        "deadline",
        sqlite_where=sa.text("deadline IS NOT NULL"),
        postgresql_where=sa.text("deadline IS NOT NULL"),
    ),
    # The recovery sweeper's query: running runs whose lease expired (their process died).
    sa.Index("ix_kern_runs_lease", "status", "lease_until"),
)

audit = sa.Table(
    "kern_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("requirement_id", sa.String(64)),
    sa.Column("workflow_name", sa.String(256)),
    sa.Column("step_name", sa.String(256)),
    sa.Column("kind", sa.String(32)),
    sa.Column("actor", sa.String(256)),
    sa.Column("decision", sa.String(32), nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("data", sa.JSON),
    sa.Column("at", sa.Float, nullable=False),
    # The audit log by actor. Partial: a decision that names nobody (most sync-API ones) has no entry, so
    # its claim writes no page of this index (see migration 0004).
    sa.Index(
        "ix_kern_audit_actor",
        "actor",
        sqlite_where=sa.text("actor IS NOT NULL"),
        postgresql_where=sa.text("actor IS NOT NULL"),
    ),
)

approvals = sa.Table(
    "kern_approvals",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("requirement_id", sa.String(64)),
    sa.Column("agent_name", sa.String(256)),
    sa.Column("tool_name", sa.String(256), nullable=False),
    sa.Column("tool_args", sa.JSON),
    sa.Column("approval_type", sa.String(16), nullable=False),  # required | audit
    sa.Column("status", sa.String(16), nullable=False),  # pending | approved | rejected
    sa.Column("requested_at", sa.Float, nullable=False),
    sa.Column("resolved_at", sa.Float),
    sa.Column("resolved_by", sa.String(256), index=True),
    sa.Column("resolution_data", sa.JSON),
    sa.Index("ix_kern_approvals_status", "status", "requested_at"),
)
