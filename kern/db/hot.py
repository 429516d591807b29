"""The hot operations' statements (save, claim, load, renew), built once and compiled once per dialect,
and the transaction they run in (`Tx`): on the driver's own connection, where SQLAlchemy's per-statement
work would cost more than the statement itself (or inside a SQLAlchemy transaction, `SaTx`, for a store
without a bare path). Watchers write in that same `Tx`, with statements prepared the same way
(`BaseDb.prepare`)."""

from __future__ import annotations

import json
import operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, cast

import sqlalchemy as sa
from pydantic_core import PydanticSerializationError, from_json, to_json
from sqlalchemy.engine import Connection
from sqlalchemy.sql.compiler import SQLCompiler

from kern.db import schema

PAUSED = "PAUSED"
RUNNING = "RUNNING"

# Hot-path statements, built once: constructing a statement per call costs more than running it.
RUNS = schema.runs.c


def insert_statement(table: sa.Table, *columns: str) -> sa.Insert:
    """INSERT of `columns`, each bound to a parameter of the column's name (for `Sql`)."""
    return table.insert().values({name: sa.bindparam(name, type_=table.c[name].type) for name in columns}).inline()


_INSERT_RUN = insert_statement(
    schema.runs, "run_id", "session_id", "workflow_name", "kind", "status", "version", "lease_until",
    "requirement_id", "deadline", "output", "journal", "created_at", "updated_at",
)  # fmt: skip
INSERT_AUDIT = insert_statement(
    schema.audit, "run_id", "requirement_id", "workflow_name", "step_name", "kind", "actor", "decision", "note",
    "data", "at",
)  # fmt: skip
_INSERT_APPROVAL = insert_statement(schema.approvals, *(c.name for c in schema.approvals.c))
_INSERT_SESSION_VALUES = ("session_id", "workflow_name", "user_id", "created_at")
# JSON, serialized once per write (the driver gets the text): compact, and no circularity check
# (`to_dict` output is a tree).
_json_dumps = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


def dumps(value: Any) -> str:
    """`value` as compact JSON text, for a JSON column. pydantic-core's encoder writes a run's output four
    times as fast as `json` does (every write of a run writes its whole output and journal); `json` writes
    what it refuses (a string with a lone surrogate) and raises, as before, for what is not JSON."""
    try:
        return to_json(value, inf_nan_mode="constants").decode()
    except (PydanticSerializationError, UnicodeError, ValueError):
        return _json_dumps(value)


def loads(text: str | bytes) -> Any:
    """A JSON column's text as Python values: pydantic-core's parser (twice as fast as `json`'s on a run's
    output), `json`'s for what it refuses (an escaped lone surrogate), which raises, as before, for what is
    not JSON."""
    try:
        return from_json(text, allow_inf_nan=True)
    except ValueError:
        return json.loads(text)


class Unreadable:
    """What a JSON column held that could not be read (an integer beyond Python's limit), with why: a
    decoder that runs inside the driver (asyncpg) returns it instead of failing the whole query, so one bad
    row does not hide the others read with it."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error


def loads_or_unreadable(text: str | bytes) -> Any:
    """`loads`, or an `Unreadable` saying why not."""
    try:
        return loads(text)
    except ValueError as exc:
        return Unreadable(f"{type(exc).__name__}: {exc}"[:300])


def dumps_or_none(value: Any) -> str | None:
    return None if value is None else dumps(value)


_UPDATE_RUN = (
    schema.runs.update()
    .where(RUNS.run_id == sa.bindparam("b_run_id"), RUNS.version == sa.bindparam("b_version"))
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
        RUNS.run_id == sa.bindparam("b_run_id"),
        RUNS.version == sa.bindparam("b_version"),
        RUNS.status == RUNNING,
    )
    .values(lease_until=sa.bindparam("b_lease"))
)
# What a retry after an unknown commit reads to recognise its own write (see `BaseDb._tx`).
_SELECT_WRITTEN = sa.select(RUNS.version, RUNS.updated_at, RUNS.output, RUNS.journal).where(
    RUNS.run_id == sa.bindparam("b_run_id")
)
# A stored run's columns, in `StoredRun`'s order.
RUN_COLUMNS = (
    RUNS.run_id,
    RUNS.session_id,
    RUNS.workflow_name,
    RUNS.status,
    RUNS.version,
    RUNS.lease_until,
    RUNS.output,
    RUNS.journal,
)
_SELECT_RUN = sa.select(*RUN_COLUMNS).where(RUNS.run_id == sa.bindparam("b_run_id"))


_AUDIT_COLUMNS = (
    "run_id", "requirement_id", "workflow_name", "step_name", "kind", "actor", "decision", "note", "data", "at",
)  # fmt: skip


def _claim_with_audit() -> sa.Insert:
    """PostgreSQL: a claim's compare-and-set UPDATE and its one audit row as ONE statement (a data-modifying
    WITH): the row is inserted only if the update matched, so its row count is the claim's. Audit values are
    the `a_<column>` parameters."""
    claimed = _UPDATE_RUN.returning(RUNS.run_id).cte("claimed")
    values = [sa.bindparam(f"a_{name}", type_=schema.audit.c[name].type) for name in _AUDIT_COLUMNS]
    return schema.audit.insert().from_select(list(_AUDIT_COLUMNS), sa.select(*values).select_from(claimed))


class Sql:
    """A hot statement compiled once for a dialect: its SQL text and the order of its parameters."""

    __slots__ = ("_pick", "fixed", "names", "text")

    def __init__(self, statement: sa.ClauseElement, dialect: sa.Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        self.text = compiled.string
        self.names = tuple(compiled.positiontup or ())
        # Values the statement carries itself (`status == RUNNING`), by parameter name.
        binds = compiled.binds
        self.fixed = {name: binds[name].value for name in self.names if not binds[name].required}
        # The parameters in statement order, picked in C (this runs for every statement of every cycle).
        if len(self.names) > 1:
            self._pick: Callable[[dict[str, Any]], tuple[Any, ...]] = operator.itemgetter(*self.names)
        else:
            self._pick = lambda params: tuple(params[name] for name in self.names)

    def args(self, params: dict[str, Any]) -> tuple[Any, ...]:
        if self.fixed:
            params = {**self.fixed, **params}
        return self._pick(params)


class HotSql:
    """The statements of the hot operations (save, claim, load, renew), compiled for one dialect."""

    def __init__(self, dialect: sa.Dialect, dialect_insert: Callable[..., Any]) -> None:
        session = dialect_insert(schema.sessions).values(
            {name: sa.bindparam(name, type_=schema.sessions.c[name].type) for name in _INSERT_SESSION_VALUES}
        )
        self.insert_session = Sql(session.on_conflict_do_nothing(), dialect)
        self.insert_run = Sql(_INSERT_RUN, dialect)
        self.update_run = Sql(_UPDATE_RUN, dialect)
        self.renew_lease = Sql(_RENEW_LEASE, dialect)
        self.select_run = Sql(_SELECT_RUN, dialect)
        self.select_written = Sql(_SELECT_WRITTEN, dialect)
        self.insert_audit = Sql(INSERT_AUDIT, dialect)
        self.insert_approval = Sql(_INSERT_APPROVAL, dialect)
        # One round trip instead of BEGIN, UPDATE, INSERT, COMMIT (SQLite has no UPDATE inside WITH).
        self.claim_with_audit = Sql(_claim_with_audit(), dialect) if dialect.name == "postgresql" else None


def driver_failure(sql: Sql, args: tuple[Any, ...], exc: BaseException) -> sa.exc.DBAPIError:
    """A driver error of a hot statement as SQLAlchemy would raise it: with its SQL, for the log."""
    return sa.exc.DBAPIError(sql.text, args, exc)


class Tx(ABC):
    """One transaction of a hot operation, as the body of that operation (and its watchers) sees it:
    prepared statements (`Sql`) run straight on the driver's connection (SQLAlchemy's per-statement work
    cost more than the statement). JSON columns take JSON text (`dumps`) and are read back as the store's
    `_json` says."""

    @abstractmethod
    def execute(self, sql: Sql, params: dict[str, Any]) -> int:
        """Run a write; its row count."""

    @abstractmethod
    def first(self, sql: Sql, params: dict[str, Any]) -> Sequence[Any] | None:
        """Run a query; its first row."""

    @abstractmethod
    def all(self, sql: Sql, params: dict[str, Any]) -> list[Sequence[Any]]:
        """Run a query; all its rows."""

    def write_alone(self, sql: Sql, params: dict[str, Any]) -> int:
        """Run a write that is the whole of this transaction's writing (no write before it in this
        transaction, none after); its row count. A dialect may run it as a transaction of its own (one
        statement, no BEGIN/COMMIT round trips), with the same all-or-nothing outcome."""
        return self.execute(sql, params)


class SaTx(Tx):
    """A hot transaction inside a SQLAlchemy transaction (a store without a bare-driver path)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def execute(self, sql: Sql, params: dict[str, Any]) -> int:
        return self.conn.exec_driver_sql(sql.text, sql.args(params)).rowcount

    def first(self, sql: Sql, params: dict[str, Any]) -> Sequence[Any] | None:
        return self.conn.exec_driver_sql(sql.text, sql.args(params)).first()

    def all(self, sql: Sql, params: dict[str, Any]) -> list[Sequence[Any]]:
        return list(self.conn.exec_driver_sql(sql.text, sql.args(params)).all())
