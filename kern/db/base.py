"""The store behind every kern run: one SQLAlchemy-core implementation for all databases.

`SqliteDb` and `PostgresDb` only configure it (URL, connection hooks, the insert dialect). Every state
change of a run is a compare-and-set on its `version`, so concurrent callers, processes or replicas
never both resume one pause.

Database faults (a dropped connection, a failover, SQLite busy) are retried inside the store: see
`BaseDb._tx` for why retrying is safe for the writes that are not idempotent, `kern.db.retry` for how.
The hot operations' statements and the transactions they run in are in `kern.db.hot`.
"""

from __future__ import annotations

import json
import logging
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kern.db import approval_records, migrations, schema
from kern.db.hot import (
    INSERT_AUDIT,
    PAUSED,
    RUN_COLUMNS,
    RUNNING,
    RUNS,
    HotSql,
    SaTx,
    Sql,
    Tx,
    Unreadable,
    dumps,
    dumps_or_none,
    loads,
)
from kern.db.options import store_id
from kern.db.quarantine import Quarantine
from kern.db.retry import Attempt, Retries
from kern.exceptions import (
    CorruptRunError,
    LostOwnershipError,
    RunAlreadyResumedError,
    RunNotFoundError,
    RunNotPausedError,
)

T = TypeVar("T")
log = logging.getLogger("kern.db")

_RECENT_RUNS = 1024


def due_query(workflow_names: Sequence[str], now: float, limit: int, skip: Sequence[str] = ()) -> sa.Select[Any]:
    """The deadline sweeper's query: paused runs of these workflows whose deadline is at or before `now`,
    soonest first, but those in `skip` (quarantined). Answered from the partial index ix_kern_runs_due
    (`deadline <= now` implies it holds)."""
    query = (
        sa.select(RUNS.run_id, RUNS.requirement_id)
        .where(RUNS.status == PAUSED, RUNS.deadline <= now, RUNS.workflow_name.in_(list(workflow_names)))
        .order_by(RUNS.deadline)
        .limit(limit)
    )
    return query.where(RUNS.run_id.not_in(list(skip))) if skip else query


def orphaned_query(workflow_names: Sequence[str], now: float, limit: int, skip: Sequence[str] = ()) -> sa.Select[Any]:
    """The recovery sweeper's query: running runs of these workflows whose lease expired before `now`,
    oldest lease first, but those in `skip` (quarantined). Answered from ix_kern_runs_lease."""
    query = (
        sa.select(RUNS.run_id)
        .where(RUNS.status == RUNNING, RUNS.lease_until < now, RUNS.workflow_name.in_(list(workflow_names)))
        .order_by(RUNS.lease_until)
        .limit(limit)
    )
    return query.where(RUNS.run_id.not_in(list(skip))) if skip else query


# A run's columns for `_stored`, the JSON ones as the driver gives them (decoded there, one row at a time):
# a row that cannot be decoded is then one CorruptRunError, not a failure of the whole result.
_AS_STORED = [sa.type_coerce(c, sa.Text) if isinstance(c.type, sa.JSON) else c for c in RUN_COLUMNS]


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
    step_name: str | None = None  # of the pause it now waits at
    # Approval records (`@approval`, type "required") of the calls the pause waits on: a host that shows the
    # pause can notice when one is resolved through the approvals API rather than on its own surface.
    approvals: tuple[str, ...] = ()


RunWatcher = Callable[[Tx, RunChange], None]


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


class BaseDb(Retries, ABC):
    """The store. Tables are created on first use.

    Every operation is one transaction written once, as a plain function of a SQLAlchemy
    `Connection`; a dialect only decides how to run it (`_run`): SQLite in one worker-thread hop,
    PostgreSQL over asyncpg. `lease_seconds` is how long a running run stays owned by its process
    without a heartbeat; a run whose owner died (its lease expired) can be taken over by
    `continue_run` from another process.

    `retry_for` is how long (seconds) one operation keeps retrying while the database is unreachable
    or locked before it raises `StoreUnavailableError` (see `_tx`).
    """

    dialect_insert: Callable[..., Any] = staticmethod(sa.insert)
    # Upgrade an older schema at first use instead of refusing it; None: KERN_DB_AUTO_UPGRADE=1 says so.
    auto_upgrade: bool | None = None
    # Errors of the database driver (their text may hold SQL and parameters): shown as `StoreError`.
    driver_errors: tuple[type[BaseException], ...] = ()
    # Whether the driver returns JSON columns as text (SQLite) rather than decoded (asyncpg).
    json_as_text = False

    def __init__(self, *, lease_seconds: float = 30.0, retry_for: float = 30.0) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        if retry_for < 0:
            raise ValueError("retry_for must not be negative")
        self.lease_seconds = lease_seconds
        self.retry_for = retry_for
        self._tables_ready = False
        self._known_sessions: set[str] = set()
        self._extra_tables: set[int] = set()
        # The last state this process saved for recent runs (none after a claim here, until the next save):
        # a claim at that exact version can skip its read (the compare-and-set on the version still catches
        # anyone who moved the run since), and `written` hands it out.
        self._recent: OrderedDict[str, StoredRun] = OrderedDict()
        self._watchers: list[RunWatcher] = []
        # Runs found unreadable: logged once, left out of the sweeps' queries for a while.
        self.quarantine = Quarantine()
        self._sql: HotSql | None = None
        self._prepared: dict[int, tuple[sa.ClauseElement, Sql]] = {}
        self.id = ""  # the store's name (see `_keep_reference_arguments`)
        # The reference API's `*_table` arguments given (kern's tables keep their names: kern.db.options).
        self.table_names: dict[str, str] = {}

    def _keep_reference_arguments(self, id: str | None, table_names: dict[str, str], where: str | None) -> None:
        """Keep the store's `id` and the `*_table` names given. The id defaults to a UUID derived from
        `where` the store keeps its data (a random one for a database of this process alone: None)."""
        self.id = store_id(id, where)
        self.table_names = table_names

    def watch(self, watcher: RunWatcher) -> None:
        """Call `watcher(tx, change)` inside every transaction that changes a run's status (a start, a
        pause, an end, a resume, a cancel, a takeover), so that what the watcher writes commits or rolls
        back with the change itself. Checkpoints that keep a run RUNNING are not reported. The watcher
        writes through `tx` (a `kern.db.hot.Tx`) with statements from `prepare`: the transaction runs on
        the bare driver connection, so it costs no more with a watcher than without."""
        self._watchers.append(watcher)

    def _notify(self, tx: Tx, change: RunChange) -> None:
        for watcher in self._watchers:
            watcher(tx, change)

    def prepare(self, statement: sa.ClauseElement) -> Sql:
        """`statement` compiled once for this store's dialect, to run in a `Tx` (`run_hot`, watchers).
        Its parameters are its bind parameters' names (`sa.bindparam`, or `kern.db.hot.insert_statement`)."""
        prepared = self._prepared.get(id(statement))
        if prepared is None or prepared[0] is not statement:
            prepared = self._prepared[id(statement)] = (statement, Sql(statement, self._sa_dialect()))
        return prepared[1]

    def written(self, run_id: str) -> StoredRun | None:
        """The run as this process last saved it, if it is among the recent ones this store keeps and no
        claim here (a resume, a cancel) has moved it since; None otherwise. No read: another process may
        have written the run since. For a caller that has just driven the run here and shows where it
        stopped (kern-bot's card after a drive), this is the state it needs, without reading it back.
        Treat it as read-only."""
        return self._recent.get(run_id)

    def _remember(self, stored: StoredRun) -> None:
        self._recent[stored.run_id] = stored
        self._recent.move_to_end(stored.run_id)
        if len(self._recent) > _RECENT_RUNS:
            self._recent.popitem(last=False)

    @abstractmethod
    async def _run(self, body: Callable[[Connection], T], *, write: bool) -> T:
        """Run `body` in one transaction (rolled back if it raises) and return its result."""

    async def _tx(
        self, body: Callable[[Any], T], *, write: bool = True, attempt: Attempt | None = None, raw: bool = False
    ) -> T:
        """Run `body` in one transaction, retrying it while the database fails transiently.

        Transient failures (`_transient`: a dropped or refused connection, a failover, SQLite busy or
        locked) are retried with backoff for up to `retry_for` seconds, then `StoreUnavailableError` is
        raised. The dialect's `_run` has already discarded a broken connection, so a retry runs on a
        fresh one. Every other database error becomes a `StoreError`. Both carry a short message and an
        id; the full exception (with its SQL) is only in the `kern.db` log.

        Why retrying is safe:
        - A failure before COMMIT rolled the transaction back: running the body again is the same as
          running it once. The compare-and-set writes read and compare again, so a retry that finds the
          row moved by someone else fails exactly like a first attempt would.
        - A failure while COMMIT was in flight (`CommitUnknownError`) leaves the outcome unknown: a blind
          retry of a compare-and-set would miss its own committed write (and wrongly report a lost
          race), an insert would hit its own row. Every non-idempotent write here therefore fixes a
          write token for the whole operation (the `updated_at` / `resolved_at` it writes, a float of
          `time.time()` at the start of the operation) and, when `attempt.commit_unknown`, first reads
          the row: the next version carrying its own token (and, for runs, its own output and journal)
          means the earlier attempt committed, and the operation returns what that attempt returned
          without writing again. Its other rows (audit, approvals) were in that same transaction.
        - Reads and `renew_lease` are idempotent.
        The hot path is one try/except: nothing is spent until something fails.

        `raw`: `body` takes a `Tx` and runs on the driver's connection (`_run_raw`), else a `Connection`.
        """
        try:
            if not self._tables_ready:
                await self._ensure_tables()
            return await (self._run_raw(body, write=write) if raw else self._run(body, write=write))
        except Exception as exc:
            if self._transient(exc):
                return await self._retry(exc, body, write, attempt, raw)
            if self._is_db_error(exc):
                raise self._store_error(exc) from exc
            raise

    async def _run_raw(self, body: Callable[[Tx], T], *, write: bool) -> T:
        """Run `body` in one transaction on the driver's own connection (rolled back if it raises)."""
        return await self._run(lambda conn: body(SaTx(conn)), write=write)

    def _sa_dialect(self) -> sa.Dialect:
        """The SQLAlchemy dialect the hot statements are compiled for."""
        raise NotImplementedError

    async def _hot(self, body: Callable[[Tx], T], *, write: bool = True, attempt: Attempt | None = None) -> T:
        """A hot operation (see `Tx`): on the bare driver connection, watchers included."""
        return await self._tx(body, write=write, attempt=attempt, raw=True)

    @property
    def sql(self) -> HotSql:
        if self._sql is None:
            self._sql = HotSql(self._sa_dialect(), self.dialect_insert)
        return self._sql

    def read_json(self, value: Any) -> Any:
        """A JSON column's value as read: the SQLite driver returns its text, asyncpg decodes it."""
        return loads(value) if self.json_as_text and isinstance(value, str) else value

    def _stored(self, row: Sequence[Any] | None) -> StoredRun | None:
        """The row as a `StoredRun`; `CorruptRunError` if its output or journal is not a JSON object."""
        if row is None:
            return None
        run_id, session_id, workflow_name, status, version, lease_until, output, journal = row
        output, journal = self._object(run_id, "output", output), self._object(run_id, "journal", journal)
        return StoredRun(run_id, session_id, workflow_name, status, version, lease_until, output, journal)

    def _object(self, run_id: str, column: str, value: Any) -> dict[str, Any]:
        if self.json_as_text and isinstance(value, str):
            try:
                value = loads(value)
            except ValueError as exc:
                value = Unreadable(f"{type(exc).__name__}: {exc}"[:300])
        if isinstance(value, dict):
            return value
        if isinstance(value, Unreadable):
            raise CorruptRunError(run_id, f"its stored {column} cannot be read as JSON (cut off?): {value.error}")
        kind = "a list" if isinstance(value, list) else "a string" if isinstance(value, str) else type(value).__name__
        raise CorruptRunError(run_id, f"its stored {column} is {kind} where a JSON object belongs")

    async def _ensure_tables(self) -> None:
        await self._run(self._create_tables, write=True)
        self._tables_ready = True

    async def _create_all_tables(self) -> None:
        """Create (or check) kern's tables now rather than at first use; the reference's name."""
        await self._ensure_tables()

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
        attempt: Attempt | None = None,
    ) -> T:
        """Run `body(connection)` in one transaction of this store: the extension point for code that
        keeps its own tables next to kern's (kern-bot does). `tables` are made ready on first use:
        a `MigrationSet` is versioned like kern's own tables (see kern.db.migrations); plain
        `MetaData` is only created if missing.

        Like every operation of the store, `body` is retried while the database fails transiently (see
        `_tx`), so it must be safe to run again after a rollback. If it is not idempotent, pass an
        `Attempt` that `body` closes over: when `attempt.commit_unknown`, an earlier attempt may have
        committed, and `body` must recognise its own write (say by a token it wrote) before writing.
        """
        if tables is not None and id(tables) not in self._extra_tables:

            def create(conn: Connection) -> None:
                self._lock_for_create(conn)
                self._ensure_schema(conn, tables)

            await self._tx(create)
            self._extra_tables.add(id(tables))
        return await self._tx(body, write=write, attempt=attempt)

    async def run_hot(
        self,
        body: Callable[[Tx], T],
        *,
        write: bool = True,
        tables: sa.MetaData | migrations.MigrationSet | None = None,
        attempt: Attempt | None = None,
    ) -> T:
        """`run_transaction` for statements prepared with `prepare`: `body(tx)` runs them on the bare
        driver connection (see `kern.db.hot.Tx`), as kern's own hot operations do. Same retries, same
        rules for `tables` and `attempt`. On SQLite an async caller's `body` may run on its event loop's
        thread (see `SqliteDb`), and again in a worker thread if SQLite was busy (nothing it wrote was
        kept): keep it to its statements and a little Python, with no waiting of its own."""
        if tables is not None and id(tables) not in self._extra_tables:
            await self.run_transaction(lambda conn: None, tables=tables)
        return await self._tx(body, write=write, attempt=attempt, raw=True)

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
        the run over, and `LostOwnershipError` is raised with nothing written. Retried after an unknown
        commit, it recognises its own write by `now` (its `updated_at`), output and journal (see `_tx`).
        """
        attempt = Attempt()
        now = time.time()  # also this write's token
        sql = self.sql
        status = output["status"]
        run_id = output["run_id"]
        session_id = output["session_id"]
        pause_id = new_requirement["requirement_id"] if new_requirement else None
        deadline = new_requirement.get("deadline") if new_requirement else None
        output_json, journal_json = dumps(output), dumps(journal)  # once, whatever the retries
        notify = bool(self._watchers) and (status != RUNNING or version == 0)

        def body(tx: Tx) -> int:
            lease = time.time() + self.lease_seconds if status == RUNNING else None
            if attempt.commit_unknown and self._wrote(tx, run_id, version + 1, now, output_json, journal_json):
                return version + 1
            new_session = version == 0 and session_id not in self._known_sessions
            # The run's row is often the only write: then it may be a transaction of its own (`write_alone`).
            write_run = tx.execute if notify or approvals or new_session else tx.write_alone
            if version == 0:
                if new_session:
                    tx.execute(
                        sql.insert_session,
                        {
                            "session_id": session_id,
                            "workflow_name": output.get("workflow_name"),
                            "user_id": output.get("user_id"),
                            "created_at": now,
                        },
                    )
                write_run(
                    sql.insert_run,
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
                        "output": output_json,
                        "journal": journal_json,
                        "created_at": output.get("created_at", now),
                        "updated_at": now,
                    },
                )
            else:
                written = write_run(
                    sql.update_run,
                    {
                        "b_run_id": run_id,
                        "b_version": version,
                        "b_status": status,
                        "b_new_version": version + 1,
                        "b_lease": lease,
                        "b_requirement_id": pause_id,
                        "b_deadline": deadline,
                        "b_output": output_json,
                        "b_journal": journal_json,
                        "b_now": now,
                    },
                )
                if written != 1:
                    raise LostOwnershipError(f"Run {run_id} was taken over by another process; this one stops.")
            if notify:
                reqs = (output.get("step_requirements") or []) if pause_id else []
                paused_at = reqs[-1].get("step_name") if reqs else None
                waits_on = _required_approvals(reqs[-1].get("executor_requirements")) if reqs else ()
                change = RunChange(
                    run_id, output.get("workflow_name"), status, pause_id, step_name=paused_at, approvals=waits_on
                )
                self._notify(tx, change)
            for approval in approvals or []:
                row = dict.fromkeys(sql.insert_approval.names)
                row.update(run_id=run_id, agent_name=output.get("workflow_name"), status="pending", requested_at=now)
                row.update(approval)
                row["tool_args"] = dumps_or_none(row["tool_args"])
                row["resolution_data"] = dumps_or_none(row["resolution_data"])
                tx.execute(sql.insert_approval, row)
            return version + 1

        new_version = await self._hot(body, attempt=attempt)
        if version == 0:
            self._known_sessions.add(session_id)
        self._remember(
            StoredRun(
                run_id=run_id,
                session_id=session_id,
                workflow_name=output.get("workflow_name"),
                status=status,
                version=new_version,
                lease_until=None,
                output=output,
                journal=dict(journal),
            )
        )
        return new_version

    def _wrote(self, tx: Tx, run_id: str, new_version: int, token: float, output: str, journal: str) -> bool:
        """Whether the run's row is this operation's own committed write: the version it wrote, its
        token as `updated_at`, and its output and journal (as serialized for the write)."""
        row = tx.first(self.sql.select_written, {"b_run_id": run_id})
        return (
            row is not None
            and row[0] == new_version
            and row[1] == token
            and self.read_json(row[2]) == json.loads(output)
            and self.read_json(row[3]) == json.loads(journal)
        )

    async def renew_lease(self, run_id: str, version: int) -> bool:
        """Extend a running run's lease; False if the run moved on (taken over or finished)."""

        def body(tx: Tx) -> bool:
            params = {"b_run_id": run_id, "b_version": version, "b_lease": time.time() + self.lease_seconds}
            return tx.write_alone(self.sql.renew_lease, params) == 1

        return await self._hot(body)

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

        Retried after an unknown commit, it recognises its own claim by its token (`now`, written as
        `updated_at`) and returns what that attempt prepared; `prepare` runs once per stored version.
        """
        attempt = Attempt()
        now = time.time()  # this claim's token
        sql = self.sql
        # stored version -> (the row as read, output, journal, resolutions, output and journal as JSON)
        prepared: dict[int, tuple[StoredRun, dict[str, Any], dict[str, Any], list[Resolution], str, str]] = {}

        def body(tx: Tx) -> tuple[StoredRun, int]:
            if attempt.commit_unknown:
                row = tx.first(sql.select_written, {"b_run_id": run_id})
                mine = prepared.get(row[0] - 1) if row is not None and row[1] == now else None
                if mine is not None and self.read_json(row[2]) == json.loads(mine[4]):  # type: ignore[index]
                    if self.read_json(row[3]) == json.loads(mine[5]):  # type: ignore[index]
                        claimed = StoredRun(**vars(mine[0]))
                        claimed.output, claimed.journal = mine[1], mine[2]
                        return claimed, claimed.version + 1
            cached = self._recent.get(run_id) if expected_version is not None else None
            if cached is not None and cached.version == expected_version and cached.status == PAUSED:
                stored: StoredRun | None = StoredRun(**vars(cached))
            else:
                stored = self._read(tx, run_id)
            if stored is None:
                raise RunNotFoundError(f"No run with id {run_id!r} in this database.")
            current = time.time()
            orphaned = stored.status == RUNNING and (running_ok or (stored.lease_until or 0) < current)
            if (stored.status != PAUSED and not orphaned) or (
                expected_version is not None and expected_version != stored.version
            ):
                self._raise_not_claimable(stored, expected_version)
            if stored.version not in prepared:
                output, journal, resolutions = prepare(stored)
                prepared[stored.version] = (
                    StoredRun(**vars(stored)), output, journal, resolutions, dumps(output), dumps(journal)
                )  # fmt: skip
            _, output, journal, resolutions, output_json, journal_json = prepared[stored.version]
            status = output.get("status", RUNNING)
            update = {
                "b_run_id": run_id,
                "b_version": stored.version,
                "b_status": status,
                "b_new_version": stored.version + 1,
                "b_lease": current + self.lease_seconds if status == RUNNING else None,
                "b_requirement_id": None,
                "b_deadline": None,
                "b_output": output_json,
                "b_journal": journal_json,
                "b_now": now,
            }
            # The usual claim (one decision, nothing else to write) is one statement where the dialect has it.
            single = (
                sql.claim_with_audit is not None
                and not self._watchers
                and len(resolutions) == 1
                and resolutions[0].approval_type != "audit"
            )
            if single:
                audit = {f"a_{k}": v for k, v in self._audit_row(stored, resolutions[0]).items()}
                written = tx.write_alone(sql.claim_with_audit, {**update, **audit})  # type: ignore[arg-type]
            else:
                written = tx.execute(sql.update_run, update)
            if written != 1:  # another claimer committed between our read and our write
                self._raise_not_claimable(self._read(tx, run_id) or stored, stored.version)
            for resolution in [] if single else resolutions:
                self._record_resolution(tx, stored, resolution)
            if self._watchers:
                self._notify(tx, RunChange(run_id, stored.workflow_name, status, None, resolutions))
            stored.output, stored.journal = output, journal
            return stored, stored.version + 1

        claimed = await self._hot(body, attempt=attempt)
        self._recent.pop(run_id, None)  # moved on from the state remembered: `written` has none until a save
        return claimed

    async def amend_ended(
        self,
        run_id: str,
        amend: Callable[[StoredRun], tuple[dict[str, Any], list[Resolution]] | None],
    ) -> StoredRun | None:
        """Add to a run that ended under a drive still running (cancelled while a step ran) what that drive
        did afterwards, so it is not lost: `amend(stored)` returns the new journal and the audit entries
        naming what was added, or None to leave the run as it is.

        The run keeps its status and output; the journal and the audit entries are one compare-and-set
        transaction (a concurrent amendment makes `amend` run again on the newer row). Returns the run as
        it stood before, or None when it is still running or paused (nothing ended under the drive) or
        `amend` added nothing. Raises `RunNotFoundError` for an unknown id.
        """
        attempt = Attempt()
        now = time.time()  # this write's token
        sql = self.sql

        def body(tx: Tx) -> StoredRun | None:
            while True:
                stored = self._read(tx, run_id)
                if stored is None:
                    raise RunNotFoundError(f"No run with id {run_id!r} in this database.")
                if attempt.commit_unknown:
                    row = tx.first(sql.select_written, {"b_run_id": run_id})
                    if row is not None and row[1] == now:  # the attempt whose commit went unanswered landed
                        return stored
                if stored.status in (RUNNING, PAUSED):
                    return None
                amended = amend(stored)
                if amended is None:
                    return None
                journal, resolutions = amended
                update = {
                    "b_run_id": run_id,
                    "b_version": stored.version,
                    "b_status": stored.status,
                    "b_new_version": stored.version + 1,
                    "b_lease": None,
                    "b_requirement_id": None,
                    "b_deadline": None,
                    "b_output": dumps(stored.output),
                    "b_journal": dumps(journal),
                    "b_now": now,
                }
                if tx.execute(sql.update_run, update) == 1:
                    for resolution in resolutions:
                        self._record_resolution(tx, stored, resolution)
                    return stored

        amended = await self._hot(body, attempt=attempt)
        self._recent.pop(run_id, None)
        return amended

    def _record_resolution(self, tx: Tx, stored: StoredRun, resolution: Resolution) -> None:
        sql = self.sql
        if resolution.approval_type == "audit":
            tx.execute(
                sql.insert_approval,
                {
                    "id": resolution.approval_id or resolution.requirement_id,
                    "run_id": stored.run_id,
                    "requirement_id": resolution.requirement_id,
                    "agent_name": stored.workflow_name,
                    "tool_name": resolution.step_name,
                    "tool_args": dumps_or_none(resolution.decision.get("args")),
                    "approval_type": "audit",
                    "status": "rejected" if resolution.decision.get("action") == "reject" else "approved",
                    "requested_at": resolution.resolved_at,
                    "resolved_at": resolution.resolved_at,
                    "resolved_by": resolution.resolved_by,
                    "resolution_data": dumps({"note": resolution.note, **resolution.decision}),
                },
            )
        tx.execute(sql.insert_audit, self._audit_row(stored, resolution))

    @staticmethod
    def _audit_row(stored: StoredRun, resolution: Resolution) -> dict[str, Any]:
        return {
            "run_id": stored.run_id,
            "requirement_id": resolution.requirement_id,
            "workflow_name": stored.workflow_name,
            "step_name": resolution.step_name,
            "kind": resolution.kind,
            "actor": resolution.resolved_by,
            "decision": resolution.decision.get("action", "?"),
            "note": resolution.note,
            "data": dumps(resolution.decision),
            "at": resolution.resolved_at,
        }

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
    def _read(self, tx: Tx, run_id: str) -> StoredRun | None:
        return self._stored(tx.first(self.sql.select_run, {"b_run_id": run_id}))

    async def load_run(self, run_id: str) -> StoredRun:
        """The stored run, or `RunNotFoundError`; `CorruptRunError` if its JSON cannot be read as a run's."""
        stored = await self._hot(lambda tx: self._read(tx, run_id), write=False)
        if stored is None:
            raise RunNotFoundError(f"No run with id {run_id!r} in this database.")
        return stored

    async def load_runs(self, run_ids: Sequence[str]) -> dict[str, StoredRun]:
        """The stored runs with these ids, by id, read in one query (an id with no run is left out): for
        a caller that shows many runs at once, instead of one `load_run` each. A run that cannot be read
        is left out too, and quarantined (see `kern.db.quarantine`): one bad row never hides the others."""
        wanted = list(dict.fromkeys(run_ids))
        if not wanted:
            return {}
        query = sa.select(*_AS_STORED).where(RUNS.run_id.in_(wanted))

        def body(conn: Connection) -> tuple[dict[str, StoredRun], list[CorruptRunError]]:
            found: dict[str, StoredRun] = {}
            unreadable: list[CorruptRunError] = []
            for row in conn.execute(query):
                try:
                    stored = self._stored(tuple(row))
                except CorruptRunError as exc:
                    unreadable.append(exc)
                    continue
                if stored is not None:
                    found[stored.run_id] = stored
            return found, unreadable

        found, unreadable = await self._tx(body, write=False)
        for error in unreadable:
            self.quarantine.hold(error)
        return found

    async def session_runs(self, session_id: str, kind: str = "workflow") -> list[StoredRun]:
        """Every run of a session, oldest first; `CorruptRunError` for the first that cannot be read."""
        c = schema.runs.c
        query = sa.select(*_AS_STORED).where(c.session_id == session_id, c.kind == kind).order_by(c.seq)

        def body(conn: Connection) -> list[StoredRun]:
            rows = conn.execute(query).all()  # all fetched (the cursor closed) before a row may raise
            return [stored for row in rows if (stored := self._stored(tuple(row))) is not None]

        return await self._tx(body, write=False)

    async def get_session_row(self, session_id: str) -> dict[str, Any] | None:
        query = sa.select(schema.sessions).where(schema.sessions.c.session_id == session_id)

        def body(conn: Connection) -> dict[str, Any] | None:
            row = conn.execute(query).mappings().first()
            return dict(row) if row else None

        return await self._tx(body, write=False)

    async def due_requirements(
        self, workflow_names: Sequence[str], *, now: float | None = None, limit: int = 100
    ) -> list[tuple[str, str]]:
        """(run_id, requirement_id) of paused runs whose deadline has passed (an indexed query), but the
        quarantined ones."""
        query = due_query(workflow_names, time.time() if now is None else now, limit, self.quarantine.held())
        return await self._tx(lambda conn: [(r.run_id, r.requirement_id) for r in conn.execute(query)], write=False)

    async def orphaned_runs(
        self, workflow_names: Sequence[str], *, now: float | None = None, limit: int = 100
    ) -> list[str]:
        """Ids of running runs whose lease expired (their process died): an indexed query, but the
        quarantined ones."""
        query = orphaned_query(workflow_names, time.time() if now is None else now, limit, self.quarantine.held())
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
        whom). Records the decision in the audit log. Returns the updated record. Retried after an
        unknown commit, it recognises its own decision by its token (`now`, written as `resolved_at`).
        """
        row = await self._decide_approval(
            approval_id, "approved" if approved else "rejected", resolved_by, {"note": note, **(data or {})}, note
        )
        assert row is not None
        return row

    async def _decide_approval(
        self,
        approval_id: str,
        status: str,
        resolved_by: str | None,
        resolution_data: dict[str, Any] | None,
        note: str | None,
        *,
        resolved_at: float | None = None,
        none_if_decided: bool = False,
    ) -> dict[str, Any] | None:
        """The one compare-and-set that decides a pending approval, with its audit line (who decided).
        An approval decided already raises `ValueError` naming who decided it, or with `none_if_decided`
        returns None (the reference API's `update_approval(expected_status=...)` guard)."""
        c = schema.approvals.c
        attempt = Attempt()
        now = time.time() if resolved_at is None else resolved_at  # this decision's token

        def body(conn: Connection) -> dict[str, Any] | None:
            result = conn.execute(
                schema.approvals.update()
                .where(c.id == approval_id, c.status == "pending")
                .values(status=status, resolved_at=now, resolved_by=resolved_by, resolution_data=resolution_data)
            )
            row = conn.execute(sa.select(schema.approvals).where(c.id == approval_id)).mappings().first()
            if row is None:
                raise LookupError(f"No approval with id {approval_id!r}.")
            if result.rowcount != 1 and attempt.commit_unknown and row["resolved_at"] == now:
                if row["status"] == status and row["resolved_by"] == resolved_by:
                    return dict(row)  # our own decision, committed by the attempt that lost its connection
            if result.rowcount != 1:
                if none_if_decided:
                    return None
                raise ValueError(
                    f"Approval {approval_id} was already {row['status']}"
                    + (f" by {row['resolved_by']}" if row["resolved_by"] else "")
                    + "."
                )
            conn.execute(
                INSERT_AUDIT,
                {
                    "run_id": row["run_id"],
                    "requirement_id": row["requirement_id"],
                    "workflow_name": row["agent_name"],
                    "step_name": row["tool_name"],
                    "kind": "approval",
                    "actor": resolved_by,
                    "decision": status,
                    "note": note,
                    "data": {"approval_id": approval_id, **(resolution_data or {})},
                    "at": now,
                },
            )
            return dict(row)

        return await self._tx(body, attempt=attempt)

    # ----- approvals in the reference API's shape (kern.db.approval_records) -----------------------
    # The async core: `SqliteDb` and `PostgresDb` offer it under the reference's names as sync
    # methods, `AsyncSqliteDb` and `AsyncPostgresDb` as async ones (kern.db.approval_api).
    async def aget_approvals(
        self,
        status: str | None = None,
        source_type: str | None = None,
        approval_type: str | None = None,
        pause_type: str | None = None,
        agent_id: str | None = None,
        team_id: str | None = None,
        workflow_id: str | None = None,
        user_id: str | None = None,
        schedule_id: str | None = None,
        run_id: str | None = None,
        limit: int = 100,
        page: int = 1,
    ) -> tuple[list[dict[str, Any]], int]:
        """Approval records, newest first, filtered, one page of `limit`: `(records, total)`, where
        `total` counts every record the filters match. kern runs no schedules: a `schedule_id` filter
        matches nothing."""
        if limit < 1 or page < 1:
            raise ValueError(f"limit and page must be at least 1, got limit={limit}, page={page}")
        filters = {
            "status": status, "source_type": source_type, "approval_type": approval_type,
            "pause_type": pause_type, "agent_id": agent_id, "team_id": team_id, "workflow_id": workflow_id,
            "user_id": user_id, "run_id": run_id,
        }  # fmt: skip
        if schedule_id is not None:
            return [], 0
        offset = (page - 1) * limit
        in_output = any(filters[name] is not None for name in approval_records.OUTPUT_FILTERS)

        def body(conn: Connection) -> tuple[list[dict[str, Any]], int]:
            query = approval_records.select_records(filters)
            if in_output:  # filtered on what the runs' outputs say: in Python, then paged
                found = [approval_records.record(r) for r in conn.execute(query).mappings()]
                found = [item for item in found if approval_records.matches(item, filters)]
                return found[offset : offset + limit], len(found)
            total = conn.execute(approval_records.count_records(filters)).scalar_one()
            rows = conn.execute(query.limit(limit).offset(offset)).mappings()
            return [approval_records.record(r) for r in rows], total

        return await self._tx(body, write=False)

    async def aget_approval(self, approval_id: str) -> dict[str, Any] | None:
        """One approval record, None if there is none with this id."""
        query = approval_records.select_records({}).where(schema.approvals.c.id == approval_id)

        def body(conn: Connection) -> dict[str, Any] | None:
            row = conn.execute(query).mappings().first()
            return None if row is None else approval_records.record(row)

        return await self._tx(body, write=False)

    async def aupdate_approval(
        self,
        approval_id: str,
        expected_status: str | None = None,
        *,
        status: str | None = None,
        resolved_by: str | None = None,
        resolved_at: float | None = None,
        resolution_data: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Approve or reject a pending approval: `status="approved"` or `"rejected"`, with who decided and
        what they gave (`resolution_data`: `values` for a user-input call, `result` for an external one).

        The same compare-and-set as `resolve_approval`, with its audit line. With `expected_status`
        ("pending"), an approval no longer pending is left as it is and None is returned (the race was
        lost); without it, that raises `ValueError` naming who decided it. A decision is never
        overwritten. Raises `LookupError` for an unknown id. Returns the updated record.
        """
        if status not in ("approved", "rejected"):
            raise ValueError(
                f"update_approval decides an approval: status must be 'approved' or 'rejected', got {status!r}."
            )
        if expected_status not in (None, "pending"):
            raise ValueError(
                f"update_approval decides a pending approval: expected_status must be 'pending' or None, got "
                f"{expected_status!r} (a decided approval is never changed)."
            )
        note = (resolution_data or {}).get("note")
        decided = await self._decide_approval(
            approval_id,
            status,
            resolved_by,
            resolution_data,
            note if isinstance(note, str) else None,
            resolved_at=None if resolved_at is None else float(resolved_at),
            none_if_decided=expected_status is not None,
        )
        return None if decided is None else await self.aget_approval(approval_id)

    async def adelete_approval(self, approval_id: str) -> bool:
        """Delete an approval record; False if there is none with this id. The audit log keeps the decision."""
        query = schema.approvals.delete().where(schema.approvals.c.id == approval_id)
        return await self._tx(lambda conn: conn.execute(query).rowcount > 0)

    async def aget_pending_approval_count(self, user_id: str | None = None) -> int:
        """How many approvals wait for a decision (of one user's sessions, with `user_id`)."""
        query = approval_records.count_records({"status": "pending", "user_id": user_id})
        return await self._tx(lambda conn: int(conn.execute(query).scalar_one()), write=False)


def _required_approvals(calls: list[dict[str, Any]] | None) -> tuple[str, ...]:
    """The approval ids of the stored calls (a tool-call pause's) that wait on a required approval record."""
    return tuple(
        call["approval_id"]
        for call in calls or []
        if call.get("approval_id")
        and (call.get("tool_execution") or {}).get("approval_type") == "required"
        and call.get("status", "pending") == "pending"
    )
