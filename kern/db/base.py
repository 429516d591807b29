"""The store behind every kern run: one SQLAlchemy-core implementation for all databases.

`SqliteDb` and `PostgresDb` only configure it (URL, connection hooks, the insert dialect). Every state
change of a run is a compare-and-set on its `version`, so concurrent callers, processes or replicas
never both resume one pause.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kern.db import migrations, schema
from kern.exceptions import LostOwnershipError, RunAlreadyResumedError, RunNotFoundError, RunNotPausedError

PAUSED = "PAUSED"
RUNNING = "RUNNING"
T = TypeVar("T")

# Hot-path statements, built once: constructing a statement per call costs more than running it.
_runs = schema.runs.c
_RECENT_RUNS = 1024
_INSERT_RUN = schema.runs.insert()
_INSERT_AUDIT = schema.audit.insert()
_INSERT_APPROVAL = schema.approvals.insert()
_UPDATE_RUN = (
    schema.runs.update()
    .where(_runs.run_id == sa.bindparam("b_run_id"), _runs.version == sa.bindparam("b_version"))
    .values(
        status=sa.bindparam("b_status"),
        version=sa.bindparam("b_new_version"),
        lease_until=sa.bindparam("b_lease"),
        requirement_id=sa.bindparam("b_requirement_id"),
        deadline=sa.bindparam("b_deadline"),
        output=sa.bindparam("b_output", type_=sa.JSON),
        journal=sa.bindparam("b_journal", type_=sa.JSON),
        updated_at=sa.bindparam("b_now"),
    )
)
_RENEW_LEASE = (
    schema.runs.update()
    .where(
        _runs.run_id == sa.bindparam("b_run_id"),
        _runs.version == sa.bindparam("b_version"),
        _runs.status == RUNNING,
    )
    .values(lease_until=sa.bindparam("b_lease"))
)
_SELECT_RUN = sa.select(
    _runs.run_id,
    _runs.session_id,
    _runs.workflow_name,
    _runs.status,
    _runs.version,
    _runs.lease_until,
    _runs.output,
    _runs.journal,
).where(_runs.run_id == sa.bindparam("b_run_id"))


@dataclass
class StoredRun:
    """A run row as read from the store."""

    run_id: str
    session_id: str
    workflow_name: str | None
    status: str
    version: int
    lease_until: float | None
    output: dict[str, Any]
    journal: dict[str, Any]


@dataclass
class RunChange:
    """What one transaction did to a run, for watchers that keep their own records in step with it
    (kern-bot's outbox): the run's new status, the pause it now waits at, the decisions it recorded."""

    run_id: str
    workflow_name: str | None
    status: str
    requirement_id: str | None = None
    resolutions: list[Resolution] = field(default_factory=list)


RunWatcher = Callable[[Connection, RunChange], None]


@dataclass
class Resolution:
    """A decision to record atomically with the claim of a paused run."""

    requirement_id: str
    status: str  # resolved | timed_out
    resolved_by: str | None
    resolved_at: float
    decision: dict[str, Any]
    step_name: str
    kind: str
    note: str | None = None
    approval_type: str | None = None  # "audit": the decision is also recorded as a resolved approval
    approval_id: str | None = None


class BaseDb(ABC):
    """The store. Tables are created on first use.

    Every operation is one transaction written once, as a plain function of a SQLAlchemy
    `Connection`; a dialect only decides how to run it (`_run`): SQLite in one worker-thread hop,
    PostgreSQL over asyncpg. `lease_seconds` is how long a running run stays owned by its process
    without a heartbeat; a run whose owner died (its lease expired) can be taken over by
    `continue_run` from another process.
    """

    dialect_insert: Callable[..., Any] = staticmethod(sa.insert)
    # Upgrade an older schema at first use instead of refusing it; None: KERN_DB_AUTO_UPGRADE=1 says so.
    auto_upgrade: bool | None = None

    def __init__(self, *, lease_seconds: float = 30.0) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.lease_seconds = lease_seconds
        self._tables_ready = False
        self._known_sessions: set[str] = set()
        self._extra_tables: set[int] = set()
        # The last state this process wrote for recent runs: a claim at that exact version can skip its
        # read (the compare-and-set on the version still catches anyone who moved the run since).
        self._recent: OrderedDict[str, StoredRun] = OrderedDict()
        self._watchers: list[RunWatcher] = []

    def watch(self, watcher: RunWatcher) -> None:
        """Call `watcher(connection, change)` inside every transaction that changes a run's status (a
        start, a pause, an end, a resume, a cancel, a takeover), so that what the watcher writes commits
        or rolls back with the change itself. Checkpoints that keep a run RUNNING are not reported."""
        self._watchers.append(watcher)

    def _notify(self, conn: Connection, change: RunChange) -> None:
        for watcher in self._watchers:
            watcher(conn, change)

    def _remember(self, stored: StoredRun) -> None:
        self._recent[stored.run_id] = stored
        self._recent.move_to_end(stored.run_id)
        if len(self._recent) > _RECENT_RUNS:
            self._recent.popitem(last=False)

    @abstractmethod
    async def _run(self, body: Callable[[Connection], T], *, write: bool) -> T:
        """Run `body` in one transaction (rolled back if it raises) and return its result."""

    async def _tx(self, body: Callable[[Connection], T], *, write: bool = True) -> T:
        if not self._tables_ready:
            await self._run(self._create_tables, write=True)
            self._tables_ready = True
        return await self._run(body, write=write)

    def _create_tables(self, conn: Connection) -> None:
        self._lock_for_create(conn)
        self._ensure_schema(conn, migrations.KERN)

    def _ensure_schema(self, conn: Connection, tables: sa.MetaData | migrations.MigrationSet) -> None:
        """First use of a set of tables: create them, or check (and with auto-upgrade, bring) them to
        the revision this code needs; `SchemaVersionError` if they are older or newer than that."""
        if isinstance(tables, sa.MetaData):
            tables.create_all(conn)
            return
        auto = migrations.auto_upgrade_from_env() if self.auto_upgrade is None else self.auto_upgrade
        tables.ensure(conn, auto_upgrade=auto)

    async def upgrade(self, *extra: migrations.MigrationSet) -> list[str]:
        """Bring kern's tables, and each of `extra` (kern-bot passes its own), to the newest revision
        this code knows, creating them if the database is empty. Returns what was done, one line each.

        Refuses (`SchemaVersionError`) a database a newer kern wrote. Safe to run concurrently and again.
        """

        def body(conn: Connection) -> list[str]:
            self._lock_for_create(conn)
            return [line for tables in (migrations.KERN, *extra) for line in tables.upgrade(conn)]

        done = await self._run(body, write=True)
        self._tables_ready = True
        self._extra_tables.update(id(tables) for tables in extra)
        return done

    async def run_transaction(
        self,
        body: Callable[[Connection], T],
        *,
        write: bool = True,
        tables: sa.MetaData | migrations.MigrationSet | None = None,
    ) -> T:
        """Run `body(connection)` in one transaction of this store: the extension point for code that
        keeps its own tables next to kern's (kern-bot does). `tables` are made ready on first use:
        a `MigrationSet` is versioned like kern's own tables (see kern.db.migrations); plain
        `MetaData` is only created if missing."""
        if tables is not None and id(tables) not in self._extra_tables:
            await self._tx(lambda conn: (self._lock_for_create(conn), self._ensure_schema(conn, tables)))
            self._extra_tables.add(id(tables))
        return await self._tx(body, write=write)

    def _lock_for_create(self, conn: Connection) -> None:
        """Dialect hook: serialize table creation across processes."""

    async def close(self) -> None:
        """Release connections."""

    # ----- writes ---------------------------------------------------------------------------------
    async def save_run(
        self,
        output: dict[str, Any],
        journal: dict[str, Any],
        *,
        version: int,
        new_requirement: dict[str, Any] | None = None,
        kind: str = "workflow",
        approvals: list[dict[str, Any]] | None = None,
    ) -> int:
        """Write a run's state; `version` 0 inserts a new row. Returns the new version.

        The write is a compare-and-set: if the row moved past `version` another process has taken
        the run over, and `LostOwnershipError` is raised with nothing written.
        """

        def body(conn: Connection) -> int:
            now = time.time()
            status = output["status"]
            lease = now + self.lease_seconds if status == RUNNING else None
            run_id = output["run_id"]
            pause_id = new_requirement["requirement_id"] if new_requirement else None
            deadline = new_requirement.get("deadline") if new_requirement else None
            if version == 0:
                session_id = output["session_id"]
                if session_id not in self._known_sessions:
                    conn.execute(
                        self.dialect_insert(schema.sessions)
                        .values(
                            session_id=session_id,
                            workflow_name=output.get("workflow_name"),
                            user_id=output.get("user_id"),
                            created_at=now,
                        )
                        .on_conflict_do_nothing()
                    )
                conn.execute(
                    _INSERT_RUN,
                    {
                        "run_id": run_id,
                        "session_id": session_id,
                        "workflow_name": output.get("workflow_name"),
                        "kind": kind,
                        "status": status,
                        "version": 1,
                        "lease_until": lease,
                        "requirement_id": pause_id,
                        "deadline": deadline,
                        "output": output,
                        "journal": journal,
                        "created_at": output.get("created_at", now),
                        "updated_at": now,
                    },
                )
            else:
                result = conn.execute(
                    _UPDATE_RUN,
                    {
                        "b_run_id": run_id,
                        "b_version": version,
                        "b_status": status,
                        "b_new_version": version + 1,
                        "b_lease": lease,
                        "b_requirement_id": pause_id,
                        "b_deadline": deadline,
                        "b_output": output,
                        "b_journal": journal,
                        "b_now": now,
                    },
                )
                if result.rowcount != 1:
                    raise LostOwnershipError(f"Run {run_id} was taken over by another process; this one stops.")
            if self._watchers and (status != RUNNING or version == 0):
                self._notify(conn, RunChange(run_id, output.get("workflow_name"), status, pause_id))
            for approval in approvals or []:
                conn.execute(
                    _INSERT_APPROVAL,
                    {
                        "run_id": run_id,
                        "agent_name": output.get("workflow_name"),
                        "status": "pending",
                        "requested_at": now,
                        **approval,
                    },
                )
            return version + 1

        new_version = await self._tx(body)
        if version == 0:
            self._known_sessions.add(output["session_id"])
        status = output["status"]
        self._remember(
            StoredRun(
                run_id=output["run_id"],
                session_id=output["session_id"],
                workflow_name=output.get("workflow_name"),
                status=status,
                version=new_version,
                lease_until=None,
                output=output,
                journal=dict(journal),
            )
        )
        return new_version

    async def renew_lease(self, run_id: str, version: int) -> bool:
        """Extend a running run's lease; False if the run moved on (taken over or finished)."""

        def body(conn: Connection) -> bool:
            params = {"b_run_id": run_id, "b_version": version, "b_lease": time.time() + self.lease_seconds}
            result = conn.execute(_RENEW_LEASE, params)
            return result.rowcount == 1

        return await self._tx(body)

    async def claim(
        self,
        run_id: str,
        *,
        expected_version: int | None,
        prepare: Callable[[StoredRun], tuple[dict[str, Any], dict[str, Any], list[Resolution]]],
        running_ok: bool = False,
    ) -> tuple[StoredRun, int]:
        """Take a paused run (or a running one whose owner's lease expired) for resumption.

        `running_ok` also takes a run that is running with a live lease (a cancel): its owner's next
        write then fails its compare-and-set (`LostOwnershipError`), so it stops at the next node.

        The row gets the status of the prepared output (RUNNING to resume; CANCELLED to cancel).
        `prepare(stored)` returns the new output and journal (with the decisions applied) and the
        resolutions to record in the audit log; it may raise to refuse, and then nothing changes. The read, the
        compare-and-set and the resolution are one transaction: exactly one of any number of
        concurrent claimers wins; the others get `RunAlreadyResumedError` (or `RunNotPausedError`).
        Returns the stored row (with the new output and journal) and the new version.
        """

        def body(conn: Connection) -> tuple[StoredRun, int]:
            cached = self._recent.get(run_id) if expected_version is not None else None
            if cached is not None and cached.version == expected_version and cached.status == PAUSED:
                stored: StoredRun | None = StoredRun(**vars(cached))
            else:
                stored = self._read(conn, run_id)
            if stored is None:
                raise RunNotFoundError(f"No run with id {run_id!r} in this database.")
            now = time.time()
            orphaned = stored.status == RUNNING and (running_ok or (stored.lease_until or 0) < now)
            if (stored.status != PAUSED and not orphaned) or (
                expected_version is not None and expected_version != stored.version
            ):
                self._raise_not_claimable(stored, expected_version)
            output, journal, resolutions = prepare(stored)
            status = output.get("status", RUNNING)
            result = conn.execute(
                _UPDATE_RUN,
                {
                    "b_run_id": run_id,
                    "b_version": stored.version,
                    "b_status": status,
                    "b_new_version": stored.version + 1,
                    "b_lease": now + self.lease_seconds if status == RUNNING else None,
                    "b_requirement_id": None,
                    "b_deadline": None,
                    "b_output": output,
                    "b_journal": journal,
                    "b_now": now,
                },
            )
            if result.rowcount != 1:  # another claimer committed between our read and our write
                self._raise_not_claimable(self._read(conn, run_id) or stored, stored.version)
            for resolution in resolutions:
                self._record_resolution(conn, stored, resolution)
            if self._watchers:
                self._notify(conn, RunChange(run_id, stored.workflow_name, status, None, resolutions))
            stored.output, stored.journal = output, journal
            return stored, stored.version + 1

        return await self._tx(body)

    @staticmethod
    def _record_resolution(conn: Connection, stored: StoredRun, resolution: Resolution) -> None:
        if resolution.approval_type == "audit":
            conn.execute(
                _INSERT_APPROVAL,
                {
                    "id": resolution.approval_id or resolution.requirement_id,
                    "run_id": stored.run_id,
                    "requirement_id": resolution.requirement_id,
                    "agent_name": stored.workflow_name,
                    "tool_name": resolution.step_name,
                    "tool_args": resolution.decision.get("args"),
                    "approval_type": "audit",
                    "status": "rejected" if resolution.decision.get("action") == "reject" else "approved",
                    "requested_at": resolution.resolved_at,
                    "resolved_at": resolution.resolved_at,
                    "resolved_by": resolution.resolved_by,
                    "resolution_data": {"note": resolution.note, **resolution.decision},
                },
            )
        conn.execute(
            _INSERT_AUDIT,
            {
                "run_id": stored.run_id,
                "requirement_id": resolution.requirement_id,
                "workflow_name": stored.workflow_name,
                "step_name": resolution.step_name,
                "kind": resolution.kind,
                "actor": resolution.resolved_by,
                "decision": resolution.decision.get("action", "?"),
                "note": resolution.note,
                "data": resolution.decision,
                "at": resolution.resolved_at,
            },
        )

    @staticmethod
    def _raise_not_claimable(fresh: StoredRun, expected_version: int | None) -> None:
        # The last pause of a workflow run, or the last tool call of an agent run.
        reqs = fresh.output.get("step_requirements") or fresh.output.get("requirements") or []
        last = reqs[-1] if reqs else {}
        where = last.get("step_name") or (last.get("tool_execution") or {}).get("tool_name")
        by = last.get("resolved_by")
        if fresh.status == PAUSED:
            raise RunAlreadyResumedError(
                f"Run {fresh.run_id} was resumed by another caller and has paused again"
                + (f" at '{where}'" if where else "")
                + "; reload it and resolve its new pause.",
                run_id=fresh.run_id,
                status=fresh.status,
                resolved_by=by,
            )
        if expected_version is not None and expected_version < fresh.version:
            raise RunAlreadyResumedError(
                f"Run {fresh.run_id} was already resumed"
                + (f": its pause at '{where}' was {last.get('status', 'resolved')}" if where else "")
                + (f" by {by}" if by else "")
                + f"; the run is now {fresh.status}.",
                run_id=fresh.run_id,
                status=fresh.status,
                resolved_by=by,
            )
        raise RunNotPausedError(
            f"Run {fresh.run_id} is {fresh.status}, not PAUSED; there is nothing to continue.",
            run_id=fresh.run_id,
            status=fresh.status,
        )

    # ----- reads ----------------------------------------------------------------------------------
    @staticmethod
    def _read(conn: Connection, run_id: str) -> StoredRun | None:
        row = conn.execute(_SELECT_RUN, {"b_run_id": run_id}).first()
        return StoredRun(*row) if row else None

    async def load_run(self, run_id: str) -> StoredRun:
        """The stored run, or `RunNotFoundError`."""
        stored = await self._tx(lambda conn: self._read(conn, run_id), write=False)
        if stored is None:
            raise RunNotFoundError(f"No run with id {run_id!r} in this database.")
        return stored

    async def session_runs(self, session_id: str, kind: str = "workflow") -> list[tuple[dict[str, Any], int]]:
        """(output, version) of every run of a session, oldest first."""
        c = schema.runs.c
        query = sa.select(c.output, c.version).where(c.session_id == session_id, c.kind == kind).order_by(c.seq)
        return await self._tx(lambda conn: [(r.output, r.version) for r in conn.execute(query)], write=False)

    async def get_session_row(self, session_id: str) -> dict[str, Any] | None:
        query = sa.select(schema.sessions).where(schema.sessions.c.session_id == session_id)

        def body(conn: Connection) -> dict[str, Any] | None:
            row = conn.execute(query).mappings().first()
            return dict(row) if row else None

        return await self._tx(body, write=False)

    async def due_requirements(
        self, workflow_names: Sequence[str], *, now: float | None = None, limit: int = 100
    ) -> list[tuple[str, str]]:
        """(run_id, requirement_id) of paused runs whose deadline has passed (an indexed query)."""
        query = (
            sa.select(_runs.run_id, _runs.requirement_id)
            .where(
                _runs.status == PAUSED,
                _runs.deadline <= (time.time() if now is None else now),
                _runs.workflow_name.in_(list(workflow_names)),
            )
            .order_by(_runs.deadline)
            .limit(limit)
        )
        return await self._tx(lambda conn: [(r.run_id, r.requirement_id) for r in conn.execute(query)], write=False)

    async def orphaned_runs(
        self, workflow_names: Sequence[str], *, now: float | None = None, limit: int = 100
    ) -> list[str]:
        """Ids of running runs whose lease expired (their process died): an indexed query."""
        query = (
            sa.select(_runs.run_id)
            .where(
                _runs.status == RUNNING,
                _runs.lease_until < (time.time() if now is None else now),
                _runs.workflow_name.in_(list(workflow_names)),
            )
            .order_by(_runs.lease_until)
            .limit(limit)
        )
        return await self._tx(lambda conn: [r.run_id for r in conn.execute(query)], write=False)

    async def audit_log(
        self, *, run_id: str | None = None, actor: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Decisions, oldest first, optionally for one run or one actor."""
        c = schema.audit.c
        query = sa.select(schema.audit).order_by(c.id).limit(limit)
        if run_id is not None:
            query = query.where(c.run_id == run_id)
        if actor is not None:
            query = query.where(c.actor == actor)
        return await self._tx(lambda conn: [dict(r) for r in conn.execute(query).mappings()], write=False)

    # ----- approvals ------------------------------------------------------------------------------
    async def list_approvals(
        self,
        *,
        status: str | None = None,
        run_id: str | None = None,
        resolved_by: str | None = None,
        approval_type: str | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Approval records, oldest first: pending ones (`status="pending"`), by run, by approver."""
        c = schema.approvals.c
        query = sa.select(schema.approvals).order_by(c.requested_at).limit(limit)
        for column, value in (
            (c.status, status),
            (c.run_id, run_id),
            (c.resolved_by, resolved_by),
            (c.approval_type, approval_type),
        ):
            if value is not None:
                query = query.where(column == value)
        return await self._tx(lambda conn: [dict(r) for r in conn.execute(query).mappings()], write=False)

    async def approvals_for_run(self, run_id: str) -> dict[str, dict[str, Any]]:
        """The run's approval records by id."""
        return {a["id"]: a for a in await self.list_approvals(run_id=run_id)}

    async def resolve_approval(
        self,
        approval_id: str,
        *,
        approved: bool,
        resolved_by: str | None = None,
        note: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Approve or reject a pending approval (compare-and-set: only a pending one changes).

        Raises `LookupError` for an unknown id and `ValueError` if it was already resolved (naming by
        whom). Records the decision in the audit log. Returns the updated record.
        """
        c = schema.approvals.c

        def body(conn: Connection) -> dict[str, Any]:
            now = time.time()
            status = "approved" if approved else "rejected"
            result = conn.execute(
                schema.approvals.update()
                .where(c.id == approval_id, c.status == "pending")
                .values(
                    status=status,
                    resolved_at=now,
                    resolved_by=resolved_by,
                    resolution_data={"note": note, **(data or {})},
                )
            )
            row = conn.execute(sa.select(schema.approvals).where(c.id == approval_id)).mappings().first()
            if row is None:
                raise LookupError(f"No approval with id {approval_id!r}.")
            if result.rowcount != 1:
                raise ValueError(
                    f"Approval {approval_id} was already {row['status']}"
                    + (f" by {row['resolved_by']}" if row["resolved_by"] else "")
                    + "."
                )
            conn.execute(
                _INSERT_AUDIT,
                {
                    "run_id": row["run_id"],
                    "requirement_id": row["requirement_id"],
                    "workflow_name": row["agent_name"],
                    "step_name": row["tool_name"],
                    "kind": "approval",
                    "actor": resolved_by,
                    "decision": status,
                    "note": note,
                    "data": {"approval_id": approval_id, **(data or {})},
                    "at": now,
                },
            )
            return dict(row)

        return await self._tx(body)
