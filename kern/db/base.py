"""The store behind every kern run: one SQLAlchemy async-core implementation for all databases.

`SqliteDb` and `PostgresDb` only configure it (URL, connection hooks, the insert dialect). Every state
change of a run is a compare-and-set on its `version`, so concurrent callers, processes or replicas
never both resume one pause.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from kern.db import schema
from kern.exceptions import LostOwnershipError, RunAlreadyResumedError, RunNotFoundError, RunNotPausedError

PAUSED = "PAUSED"
RUNNING = "RUNNING"


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


class BaseDb:
    """Async store over SQLAlchemy core. Tables are created on first use.

    `lease_seconds` is how long a running run stays owned by its process without a heartbeat; a run
    whose owner died (its lease expired) can be taken over by `continue_run` from another process.
    """

    dialect_insert: Callable[..., Any] = staticmethod(sa.insert)

    def __init__(self, url: str, *, lease_seconds: float = 30.0, **engine_kwargs: Any) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.url = url
        self.lease_seconds = lease_seconds
        self._engine_kwargs = engine_kwargs
        self._engines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncEngine] = weakref.WeakKeyDictionary()
        self._tables_ready = False
        self._known_sessions: set[str] = set()

    # ----- engine and tables -----------------------------------------------------------------------
    def _make_engine(self) -> AsyncEngine:
        engine = create_async_engine(self.url, **self._engine_kwargs)
        self._configure(engine)
        return engine

    def _configure(self, engine: AsyncEngine) -> None:
        """Dialect hook: connection pragmas, transaction mode."""

    async def _before_create(self, conn: AsyncConnection) -> None:
        """Dialect hook: serialize table creation across processes."""

    async def engine(self) -> AsyncEngine:
        """This event loop's engine (asyncpg connections cannot cross loops), tables ready."""
        loop = asyncio.get_running_loop()
        engine = self._engines.get(loop)
        if engine is None:
            engine = self._make_engine()
            self._engines[loop] = engine
        if not self._tables_ready:
            async with engine.begin() as conn:
                await self._before_create(conn)
                await conn.run_sync(schema.metadata.create_all)
                await conn.execute(
                    self.dialect_insert(schema.meta)
                    .values(key="schema_version", value=str(schema.SCHEMA_VERSION))
                    .on_conflict_do_nothing()
                )
            self._tables_ready = True
        return engine

    async def close(self) -> None:
        """Dispose of this loop's engine."""
        engine = self._engines.pop(asyncio.get_running_loop(), None)
        if engine is not None:
            await engine.dispose()

    # ----- writes ---------------------------------------------------------------------------------
    async def save_run(
        self,
        output: dict[str, Any],
        journal: dict[str, Any],
        *,
        version: int,
        new_requirement: dict[str, Any] | None = None,
        kind: str = "workflow",
    ) -> int:
        """Write a run's state; `version` 0 inserts a new row. Returns the new version.

        The write is a compare-and-set: if the row moved past `version` another process has taken
        the run over, and `LostOwnershipError` is raised with nothing written.
        """
        now = time.time()
        status = output["status"]
        lease = now + self.lease_seconds if status == RUNNING else None
        engine = await self.engine()
        async with engine.begin() as conn:
            if version == 0:
                session_id = output["session_id"]
                if session_id not in self._known_sessions:
                    await conn.execute(
                        self.dialect_insert(schema.sessions)
                        .values(
                            session_id=session_id,
                            workflow_name=output.get("workflow_name"),
                            user_id=output.get("user_id"),
                            created_at=now,
                        )
                        .on_conflict_do_nothing()
                    )
                await conn.execute(
                    schema.runs.insert().values(
                        run_id=output["run_id"],
                        session_id=session_id,
                        workflow_name=output.get("workflow_name"),
                        kind=kind,
                        status=status,
                        version=1,
                        lease_until=lease,
                        output=output,
                        journal=journal,
                        created_at=output.get("created_at", now),
                        updated_at=now,
                    )
                )
            else:
                result = await conn.execute(
                    schema.runs.update()
                    .where(schema.runs.c.run_id == output["run_id"], schema.runs.c.version == version)
                    .values(
                        status=status,
                        version=version + 1,
                        lease_until=lease,
                        output=output,
                        journal=journal,
                        updated_at=now,
                    )
                )
                if result.rowcount != 1:
                    raise LostOwnershipError(
                        f"Run {output['run_id']} was taken over by another process; this one stops."
                    )
            if new_requirement is not None:
                await conn.execute(
                    schema.requirements.insert().values(
                        requirement_id=new_requirement["requirement_id"],
                        run_id=output["run_id"],
                        workflow_name=output.get("workflow_name"),
                        step_name=new_requirement["step_name"],
                        kind=new_requirement["kind"],
                        status="pending",
                        deadline=new_requirement.get("deadline"),
                        created_at=now,
                    )
                )
        if version == 0:
            self._known_sessions.add(output["session_id"])
        return version + 1

    async def renew_lease(self, run_id: str, version: int) -> bool:
        """Extend a running run's lease; False if the run moved on (taken over or finished)."""
        engine = await self.engine()
        async with engine.begin() as conn:
            result = await conn.execute(
                schema.runs.update()
                .where(
                    schema.runs.c.run_id == run_id,
                    schema.runs.c.version == version,
                    schema.runs.c.status == RUNNING,
                )
                .values(lease_until=time.time() + self.lease_seconds)
            )
            return result.rowcount == 1

    async def claim(
        self,
        run_id: str,
        *,
        expected_version: int | None,
        prepare: Callable[[StoredRun], tuple[dict[str, Any], dict[str, Any], Resolution | None]],
        actor_label: str = "continue_run",
    ) -> tuple[StoredRun, int]:
        """Take a paused run (or a running one whose owner's lease expired) for resumption.

        `prepare(stored)` returns the new output and journal (with the decision applied) and the
        resolution to record. The read, the compare-and-set and the resolution are one transaction;
        exactly one of any number of concurrent claimers wins. Losers get `RunAlreadyResumedError`
        (or `RunNotPausedError`) and change nothing. Returns the stored row and the new version.
        """
        engine = await self.engine()
        async with engine.begin() as conn:
            stored = await self._read(conn, run_id)
            if stored is None:
                raise RunNotFoundError(f"No run with id {run_id!r} in this database.")
            now = time.time()
            orphaned = stored.status == RUNNING and (stored.lease_until or 0) < now
            if stored.status != PAUSED and not orphaned:
                await self._raise_not_claimable(conn, stored, expected_version)
            if expected_version is not None and expected_version != stored.version:
                await self._raise_not_claimable(conn, stored, expected_version)
            output, journal, resolution = prepare(stored)
            result = await conn.execute(
                schema.runs.update()
                .where(schema.runs.c.run_id == run_id, schema.runs.c.version == stored.version)
                .values(
                    status=RUNNING,
                    version=stored.version + 1,
                    lease_until=now + self.lease_seconds,
                    output=output,
                    journal=journal,
                    updated_at=now,
                )
            )
            if result.rowcount != 1:
                await self._raise_not_claimable(conn, stored, stored.version)
            if resolution is not None:
                await conn.execute(
                    schema.requirements.update()
                    .where(schema.requirements.c.requirement_id == resolution.requirement_id)
                    .values(
                        status=resolution.status,
                        resolved_at=resolution.resolved_at,
                        resolved_by=resolution.resolved_by,
                        decision=resolution.decision,
                    )
                )
                await conn.execute(
                    schema.audit.insert().values(
                        run_id=run_id,
                        requirement_id=resolution.requirement_id,
                        workflow_name=stored.workflow_name,
                        step_name=resolution.step_name,
                        kind=resolution.kind,
                        actor=resolution.resolved_by,
                        decision=resolution.decision.get("action", "?"),
                        note=resolution.note,
                        data=resolution.decision,
                        at=resolution.resolved_at,
                    )
                )
        stored.output, stored.journal = output, journal
        return stored, stored.version + 1

    async def _raise_not_claimable(
        self, conn: AsyncConnection, stored: StoredRun, expected_version: int | None
    ) -> None:
        fresh = await self._read(conn, stored.run_id) or stored
        reqs = fresh.output.get("step_requirements") or []
        last = reqs[-1] if reqs else {}
        by = last.get("resolved_by")
        if fresh.status == PAUSED:
            raise RunAlreadyResumedError(
                f"Run {fresh.run_id} was resumed by another caller"
                + (f" (resolved by {by})" if by else "")
                + " and has paused again; reload it and resolve its new pause.",
                run_id=fresh.run_id,
                status=fresh.status,
                resolved_by=by,
            )
        if expected_version is not None and expected_version < fresh.version and reqs:
            what = last.get("status", "resolved")
            raise RunAlreadyResumedError(
                f"Run {fresh.run_id} was already resumed: its pause at step '{last.get('step_name')}' was "
                f"{what}" + (f" by {by}" if by else "") + f"; the run is now {fresh.status}.",
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
    async def _read(self, conn: AsyncConnection, run_id: str) -> StoredRun | None:
        c = schema.runs.c
        row = (
            await conn.execute(
                sa.select(
                    c.run_id,
                    c.session_id,
                    c.workflow_name,
                    c.status,
                    c.version,
                    c.lease_until,
                    c.output,
                    c.journal,
                ).where(c.run_id == run_id)
            )
        ).first()
        return StoredRun(*row) if row else None

    async def load_run(self, run_id: str) -> StoredRun:
        """The stored run, or `RunNotFoundError`."""
        engine = await self.engine()
        async with engine.connect() as conn:
            stored = await self._read(conn, run_id)
        if stored is None:
            raise RunNotFoundError(f"No run with id {run_id!r} in this database.")
        return stored

    async def session_runs(self, session_id: str, kind: str = "workflow") -> list[tuple[dict[str, Any], int]]:
        """(output, version) of every run of a session, oldest first."""
        c = schema.runs.c
        engine = await self.engine()
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.select(c.output, c.version).where(c.session_id == session_id, c.kind == kind).order_by(c.seq)
            )
            return [(r.output, r.version) for r in rows]

    async def get_session_row(self, session_id: str) -> dict[str, Any] | None:
        engine = await self.engine()
        async with engine.connect() as conn:
            row = (
                (await conn.execute(sa.select(schema.sessions).where(schema.sessions.c.session_id == session_id)))
                .mappings()
                .first()
            )
            return dict(row) if row else None

    async def due_requirements(
        self, workflow_names: Sequence[str], *, now: float | None = None, limit: int = 100
    ) -> list[tuple[str, str]]:
        """(run_id, requirement_id) of pending pauses past their deadline (an indexed query)."""
        c = schema.requirements.c
        engine = await self.engine()
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.select(c.run_id, c.requirement_id)
                .where(
                    c.status == "pending",
                    c.deadline <= (time.time() if now is None else now),
                    c.workflow_name.in_(list(workflow_names)),
                )
                .order_by(c.deadline)
                .limit(limit)
            )
            return [(r.run_id, r.requirement_id) for r in rows]

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
        engine = await self.engine()
        async with engine.connect() as conn:
            return [dict(r) for r in (await conn.execute(query)).mappings()]

    async def requirement_rows(self, run_id: str) -> list[dict[str, Any]]:
        """Every pause row of a run, oldest first."""
        c = schema.requirements.c
        engine = await self.engine()
        async with engine.connect() as conn:
            rows = await conn.execute(sa.select(schema.requirements).where(c.run_id == run_id).order_by(c.created_at))
            return [dict(r) for r in rows.mappings()]
