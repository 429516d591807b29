"""Approval records in the reference API's shape (`get_approvals`, `get_approval`, ...).

kern stores an approval as a row of `kern_approvals` (see `kern.db.schema`); what the reference API's
record holds beyond that row is read from the run it belongs to (its session, its kind, its status, the
paused call's requirement) and its session (the user). This module builds that query and that record;
`BaseDb` runs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from kern.db import schema
from kern.db.hot import loads

_A = schema.approvals.c
_R = schema.runs.c
_S = schema.sessions.c

# Filters of `get_approvals` answered by SQL, and those answered from the run's stored output.
SQL_FILTERS = ("status", "approval_type", "run_id", "source_type", "user_id")
OUTPUT_FILTERS = ("pause_type", "agent_id", "team_id", "workflow_id")

_KIND_SOURCE = {"agent": "agent", "team": "team", "workflow": "workflow"}


def select_records(filters: Mapping[str, Any]) -> sa.Select[Any]:
    """Approval rows with their run's and session's columns, newest first, filtered on the SQL filters
    given (None: not filtered)."""
    query = (
        sa.select(
            schema.approvals,
            _R.session_id.label("run_session_id"),
            _R.kind.label("run_kind"),
            _R.status.label("run_status"),
            _R.output.label("run_output"),
            _S.user_id.label("session_user_id"),
        )
        .select_from(
            schema.approvals.outerjoin(schema.runs, _R.run_id == _A.run_id).outerjoin(
                schema.sessions, _S.session_id == _R.session_id
            )
        )
        .order_by(_A.requested_at.desc(), _A.id)
    )
    columns = {"status": _A.status, "approval_type": _A.approval_type, "run_id": _A.run_id, "user_id": _S.user_id}
    for name in SQL_FILTERS:
        value = filters.get(name)
        if value is None:
            continue
        if name == "source_type":
            query = query.where(_R.kind == value)
        else:
            query = query.where(columns[name] == value)
    return query


def count_records(filters: Mapping[str, Any]) -> sa.Select[Any]:
    """How many approvals `select_records(filters)` finds."""
    return sa.select(sa.func.count()).select_from(select_records(filters).order_by(None).subquery())


def record(row: Mapping[Any, Any]) -> dict[str, Any]:
    """One row of `select_records` as the reference API's approval record (kern's own columns kept:
    `requirement_id`, `agent_name`, `requested_at`)."""
    output = row.get("run_output") or {}
    if isinstance(output, str):  # a driver that hands JSON back as text
        output = loads(output)
    requirement = next(
        (r for r in output.get("requirements") or [] if r.get("id") == row["requirement_id"]),
        None,
    )
    execution = (requirement or {}).get("tool_execution") or {}
    source_name = row["agent_name"]
    context: dict[str, Any] = {"tool_names": [row["tool_name"]]}
    if source_name:
        context["source_name"] = source_name
    kind = row.get("run_kind")
    return {
        "id": row["id"],
        "run_id": row["run_id"],
        "session_id": row.get("run_session_id") or output.get("session_id") or "",
        "status": row["status"],
        "source_type": _KIND_SOURCE.get(kind or "", "agent"),
        "approval_type": row["approval_type"],
        "pause_type": pause_type(execution),
        "tool_name": row["tool_name"],
        "tool_args": row["tool_args"],
        "expires_at": None,
        "agent_id": output.get("agent_id"),
        "team_id": output.get("team_id"),
        "workflow_id": output.get("workflow_id"),
        "user_id": row.get("session_user_id") or output.get("user_id"),
        "schedule_id": None,
        "schedule_run_id": None,
        "source_name": source_name,
        "requirements": [requirement] if requirement is not None else None,
        "context": context,
        "resolution_data": row["resolution_data"],
        "resolved_by": row["resolved_by"],
        "resolved_at": row["resolved_at"],
        "created_at": row["requested_at"],
        "updated_at": row["resolved_at"],
        "run_status": row.get("run_status"),
        "requirement_id": row["requirement_id"],
        "agent_name": source_name,
        "requested_at": row["requested_at"],
    }


def pause_type(execution: Mapping[str, Any]) -> str:
    """What the gated call waits for, from its stored tool execution."""
    if execution.get("requires_user_feedback"):
        return "user_feedback"
    if execution.get("requires_user_input"):
        return "user_input"
    if execution.get("external_execution_required"):
        return "external_execution"
    return "confirmation"


def matches(item: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    """Whether a record passes the filters answered from the run's output."""
    return all(filters.get(name) is None or item.get(name) == filters[name] for name in OUTPUT_FILTERS)
