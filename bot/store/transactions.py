"""The two helpers every bot table is written with: `insert_once` (idempotent under the store's retries)
and `StoreBase` (the transactions the store's parts share). The store's transaction runner, as
`bot.runs.background` is the bot's task runner: every layer's reads and writes pass through it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa

from kern.db.base import BaseDb
from kern.db.hot import Sql, Tx, dumps_or_none
from kern.db.retry import Attempt

# Per dialect: INSERT ... ON CONFLICT DO NOTHING of a table's given columns (`insert_once`).
_INSERTS_IGNORING: dict[tuple[Any, str, tuple[str, ...]], tuple[sa.ClauseElement, sa.ClauseElement]] = {}


def inserts_ignoring(db: BaseDb, table: sa.Table, names: tuple[str, ...]) -> tuple[Sql, Sql]:
    """(INSERT of `names` that does nothing on a key conflict, SELECT of those columns by key), prepared."""
    key = (db.dialect_insert, table.name, names)
    statements = _INSERTS_IGNORING.get(key)
    if statements is None:
        insert = db.dialect_insert(table).values({n: sa.bindparam(n, type_=table.c[n].type) for n in names})
        select = sa.select(*(table.c[n] for n in names)).where(
            *(column == sa.bindparam(f"b_{column.name}") for column in table.primary_key.columns)
        )
        statements = _INSERTS_IGNORING[key] = (insert.on_conflict_do_nothing(), select)
    return db.prepare(statements[0]), db.prepare(statements[1])


def insert_once(
    db: BaseDb,
    table: sa.Table,
    values: dict[str, Any],
    *,
    also: Callable[[Tx], Any] | None = None,
    if_first: Callable[[Tx], Any] | None = None,
) -> Awaitable[bool]:
    """Insert a row in the bot's tables; False (nothing changed) if its key exists already, whoever wrote it.
    `if_first(tx)` runs in the same transaction (a `kern.db.hot.Tx`: statements from `db.prepare`) when this
    call inserted the row (what the new row owes: its audit line, a message to Slack), then `also(tx)`,
    whoever inserted it. An exception from either rolls the insert back.

    Safe under the store's retries: if an earlier attempt's COMMIT was cut off (it may have committed),
    a row with this key and exactly these values is recognised as this call's own (the values carry a
    float timestamp taken once per call), so a retried first insert is not mistaken for a repeat.
    """
    from bot.store.migrations import BOT  # versions these tables; it imports them from bot.store.tables

    attempt = Attempt()
    names = tuple(values)
    json_columns = {n for n in names if isinstance(table.c[n].type, sa.JSON)}
    params = {n: dumps_or_none(v) if n in json_columns else v for n, v in values.items()}
    key = {f"b_{column.name}": values[column.name] for column in table.primary_key.columns}

    def body(tx: Tx) -> bool:
        insert, select = inserts_ignoring(db, table, names)
        mine = False
        if attempt.commit_unknown and (row := tx.first(select, key)) is not None:
            stored = dict(zip(names, row, strict=True))
            mine = stored | {n: db.read_json(stored[n]) for n in json_columns} == values
        alone = also is None and if_first is None
        first = mine or (tx.write_alone if alone else tx.execute)(insert, params) == 1
        if first and if_first is not None:
            if_first(tx)
        if also is not None:
            also(tx)
        return first

    return db.run_hot(body, tables=BOT, attempt=attempt)


class StoreBase:
    """The database and the bot's migration set, shared by the parts of `bot.store.BotStore`."""

    def __init__(self, db: BaseDb) -> None:
        from bot.store.migrations import BOT  # versions these tables; it imports them from bot.store.tables

        self.db = db
        self._tables = BOT

    async def _hot(self, body: Callable[[Tx], Any], write: bool = True) -> Any:
        return await self.db.run_hot(body, write=write, tables=self._tables)

    async def _tx(self, body: Any, write: bool = True) -> Any:
        return await self.db.run_transaction(body, write=write, tables=self._tables)

    async def ready(self) -> None:
        """Make sure the bot's tables exist (kern's transactions write the outbox from then on)."""
        await self._tx(lambda c: None)
