"""AgentOS's approval routes: list, read and resolve the approval records `@approval` tools create.

The records are kern's (`BaseDb.list_approvals` / `resolve_approval`); they are answered in the
reference's shape, with what kern keeps on the run (its session, whether an agent, team or workflow ran
it) read from the run itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from kern.db.base import BaseDb, StoredRun
from kern.os.http import HTTPError, json_response

_STATUSES = ("pending", "approved", "rejected", "expired", "cancelled")
_TYPES = ("required", "audit")
# Filters the store answers itself, and the ones read from the shaped record.
_STORE_FILTERS = ("status", "run_id", "approval_type")
_SHAPED_FILTERS = ("source_type", "pause_type", "agent_id", "team_id", "workflow_id", "user_id")
_QUERY = (*_STORE_FILTERS, *_SHAPED_FILTERS, "schedule_id", "limit", "page")


def _seconds(value: Any) -> int | None:
    return None if value is None else int(value)


def _pause_type(tool: dict[str, Any]) -> str:
    if tool.get("requires_user_input"):
        return "user_input"
    if tool.get("external_execution_required"):
        return "external_execution"
    return "confirmation"


def shape(record: dict[str, Any], run: StoredRun | None) -> dict[str, Any]:
    """A kern approval record in the reference's response shape."""
    output = run.output if run is not None else {}
    requirement = next(
        (r for r in output.get("requirements") or [] if r.get("approval_id") == record["id"]),
        None,
    )
    tool = (requirement or {}).get("tool_execution") or {}
    if output.get("workflow_id") and not output.get("agent_id") and not output.get("team_id"):
        source_type = "workflow"
    elif output.get("team_id"):
        source_type = "team"
    else:
        source_type = "agent"
    source_name = record.get("agent_name") or output.get("agent_name") or output.get("workflow_name")
    return {
        "id": record["id"],
        "run_id": record["run_id"],
        "session_id": run.session_id if run is not None else "",
        "status": record["status"],
        "source_type": source_type,
        "approval_type": record.get("approval_type"),
        "pause_type": _pause_type(tool),
        "tool_name": record.get("tool_name"),
        "tool_args": record.get("tool_args"),
        "expires_at": None,
        "agent_id": output.get("agent_id"),
        "team_id": output.get("team_id"),
        "workflow_id": output.get("workflow_id") if source_type == "workflow" else None,
        "user_id": output.get("user_id"),
        "schedule_id": None,
        "schedule_run_id": None,
        "source_name": source_name,
        "requirements": [requirement] if requirement is not None else None,
        "context": {"tool_names": [record.get("tool_name")], "source_name": source_name},
        "resolution_data": record.get("resolution_data"),
        "resolved_by": record.get("resolved_by"),
        "resolved_at": _seconds(record.get("resolved_at")),
        "created_at": _seconds(record.get("requested_at")),
        "updated_at": _seconds(record.get("resolved_at")),
        "run_status": run.status if run is not None else None,
    }


class Approvals:
    """The approval routes over the stores AgentOS serves (its own `db` first, then its components')."""

    def __init__(self, dbs: Sequence[BaseDb]) -> None:
        self.dbs = list(dbs)

    async def _shaped(self, db: BaseDb, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        runs = await db.load_runs([r["run_id"] for r in records])
        return [shape(r, runs.get(r["run_id"])) for r in records]

    async def _find(self, approval_id: str) -> tuple[BaseDb, dict[str, Any]]:
        for db in self.dbs:
            for record in await db.list_approvals(run_id=None, limit=1_000_000):
                if record["id"] == approval_id:
                    return db, record
        raise HTTPError(404, "Approval not found")

    async def list_records(self, request: web.Request) -> web.Response:
        """GET /approvals: filters `status`, `approval_type`, `run_id`, `source_type`, `pause_type`,
        `agent_id`, `team_id`, `workflow_id`, `user_id`; `limit` (1-1000) and `page`; newest first."""
        query = request.query
        unknown = sorted(set(query) - set(_QUERY))
        if unknown:
            raise HTTPError(400, f"Unsupported query parameter(s): {', '.join(unknown)}")
        if query.get("status") not in (None, *_STATUSES):
            raise HTTPError(422, f"status must be one of {', '.join(_STATUSES)}")
        if query.get("approval_type") not in (None, *_TYPES):
            raise HTTPError(422, f"approval_type must be one of {', '.join(_TYPES)}")
        if query.get("schedule_id"):
            return self._page([], 100, 1)  # kern has no schedules: no record has a schedule_id
        limit, page = _int(query, "limit", 100, 1, 1000), _int(query, "page", 1, 1, None)
        records: dict[str, dict[str, Any]] = {}
        for db in self.dbs:
            found = await db.list_approvals(
                status=query.get("status"),
                run_id=query.get("run_id"),
                approval_type=query.get("approval_type"),
                limit=1_000_000,
            )
            for shaped in await self._shaped(db, found):
                records.setdefault(shaped["id"], shaped)
        wanted = [r for r in records.values() if all(query.get(k) in (None, r.get(k)) for k in _SHAPED_FILTERS)]
        wanted.sort(key=lambda r: r["created_at"] or 0, reverse=True)
        return self._page(wanted, limit, page)

    @staticmethod
    def _page(records: list[dict[str, Any]], limit: int, page: int) -> web.Response:
        total = len(records)
        return json_response(
            {
                "data": records[(page - 1) * limit : page * limit],
                "meta": {
                    "page": page,
                    "limit": limit,
                    "total_pages": (total + limit - 1) // limit,
                    "total_count": total,
                },
            }
        )

    async def count(self, request: web.Request) -> web.Response:
        """GET /approvals/count: how many are pending (`user_id` filters by the run's user)."""
        user_id = request.query.get("user_id")
        total = 0
        for db in self.dbs:
            shaped = await self._shaped(db, await db.list_approvals(status="pending", limit=1_000_000))
            total += sum(1 for r in shaped if user_id in (None, r["user_id"]))
        return json_response({"count": total})

    async def get(self, request: web.Request) -> web.Response:
        """GET /approvals/{approval_id}."""
        db, record = await self._find(request.match_info["approval_id"])
        return json_response((await self._shaped(db, [record]))[0])

    async def status(self, request: web.Request) -> web.Response:
        """GET /approvals/{approval_id}/status."""
        approval_id = request.match_info["approval_id"]
        _, record = await self._find(approval_id)
        return json_response(
            {
                "approval_id": approval_id,
                "status": record["status"],
                "run_id": record["run_id"],
                "resolved_at": _seconds(record.get("resolved_at")),
                "resolved_by": record.get("resolved_by"),
            }
        )

    async def resolve(self, request: web.Request) -> web.Response:
        """POST /approvals/{approval_id}/resolve, a JSON body `{"status": "approved" | "rejected",
        "resolved_by": ..., "resolution_data": {...}}`: who decided is recorded on the record and in the
        audit log. 409 if it was already resolved."""
        try:
            body = await request.json()
        except ValueError:
            raise HTTPError(422, "the body must be a JSON object") from None
        if not isinstance(body, dict):
            raise HTTPError(422, "the body must be a JSON object")
        unknown = sorted(set(body) - {"status", "resolved_by", "resolution_data"})
        if unknown:
            raise HTTPError(422, f"Unsupported field(s): {', '.join(unknown)}")
        decision = body.get("status")
        if decision not in ("approved", "rejected"):
            raise HTTPError(422, "status must be 'approved' or 'rejected'")
        resolved_by = body.get("resolved_by")
        if resolved_by is not None and (not isinstance(resolved_by, str) or len(resolved_by) > 255):
            raise HTTPError(422, "resolved_by must be a text of at most 255 characters")
        data = body.get("resolution_data")
        if data is not None and not isinstance(data, dict):
            raise HTTPError(422, "resolution_data must be a JSON object")
        db, record = await self._find(request.match_info["approval_id"])
        try:
            updated = await db.resolve_approval(
                record["id"],
                approved=decision == "approved",
                resolved_by=resolved_by,
                note=(data or {}).get("note"),
                data={k: v for k, v in (data or {}).items() if k != "note"} or None,
            )
        except LookupError:
            raise HTTPError(404, "Approval not found") from None
        except ValueError:
            current = (await self._find(record["id"]))[1]
            raise HTTPError(409, f"Approval is already '{current['status']}' and cannot be resolved") from None
        return json_response((await self._shaped(db, [updated]))[0])


def _int(query: Any, name: str, default: int, low: int, high: int | None) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPError(422, f"{name} must be an integer") from None
    if value < low or (high is not None and value > high):
        raise HTTPError(422, f"{name} must be between {low} and {high}" if high else f"{name} must be >= {low}")
    return value
