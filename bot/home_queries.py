"""The App Home's reads and writes in kern-bot's tables: the open pauses and their cards, the runs a person
started, and who has the Home open (and where in their list).

Every open pause is read, not the newest few: a person's Home counts exactly the pauses waiting on them
and shows their own however many others wait. So the read is light (no run's stored output, only what the
rules depend on: the workflow, the run's channel and starter, the step for workflows with per-step
rules, and whether the pause was handed to or by the person, or escalated), and a pause counts as open
only while its run still waits at it (kern's run row names its active pause).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from bot.store import CARD_COLUMNS, BotStore, Card
from bot.tables import cards, escalations, handovers, home_viewers, pauses
from kern.db.schema import runs
from kern.run.base import RunStatus

MOST_RUNS = 10  # runs listed under "Your runs"
MOST_VIEWERS = 200  # people refreshed when a pause opens or closes (the most recent to open the tab)
_VIEWERS = (
    sa.select(home_viewers.c.user_id, home_viewers.c.page)
    .where(home_viewers.c.team_id == sa.bindparam("b_team"))
    .order_by(home_viewers.c.opened_at.desc())
    .limit(MOST_VIEWERS)
)


class _ActiveStep(FunctionElement[str]):
    """The step name of a stored run's last requirement (the pause it waits at), read in SQL from its
    output; NULL where the output holds none (or, on SQLite, is not valid JSON: a corrupt row)."""

    type = sa.String()
    inherit_cache = True
    name = "active_step"


@compiles(_ActiveStep, "sqlite")
def _active_step_sqlite(element: _ActiveStep, compiler: sa.sql.compiler.SQLCompiler, **kw: object) -> str:
    output = compiler.process(element.clauses, **kw)
    return f"CASE WHEN json_valid({output}) THEN json_extract({output}, '$.step_requirements[#-1].step_name') END"


@compiles(_ActiveStep, "postgresql")
def _active_step_postgresql(element: _ActiveStep, compiler: sa.sql.compiler.SQLCompiler, **kw: object) -> str:
    return f"(({compiler.process(element.clauses, **kw)}) -> 'step_requirements' -> -1 ->> 'step_name')"


@dataclass
class OpenPause:
    """An open pause as the Home decides on it: its run's card, when it was posted, its step (None unless
    its workflow has per-step rules), and whether anything was done to it that may change who answers it
    beside its rules (`touched`: handed to or by the person asking, or escalated)."""

    requirement_id: str
    card: Card
    posted_at: float
    step: str | None
    touched: bool


class HomeQueries:
    """The Home's reads and writes in the bot's tables."""

    def __init__(self, store: BotStore) -> None:
        from bot.migrations import BOT

        self.db = store.db
        self._tables = BOT

    async def _tx(self, body: Callable[[Connection], Any], write: bool = True) -> Any:
        return await self.db.run_transaction(body, write=write, tables=self._tables)

    async def open_pauses(self, team: str, user: str, step_workflows: Collection[str] = ()) -> list[OpenPause]:
        """Every pause of workspace `team` whose run still waits at it and whose message is not yet decided,
        newest first, as the Home decides on it for `user` (see `OpenPause`). `step_workflows`: the
        workflows whose pauses' step names are read (those with per-step rules)."""
        p, c, r = pauses.c, cards.c, runs.c
        h = handovers.c
        touched = sa.or_(
            sa.exists().where(h.requirement_id == p.requirement_id, sa.or_(h.to_user == user, h.by_user == user)),
            sa.exists().where(escalations.c.requirement_id == p.requirement_id),
        )
        step: sa.ColumnElement[Any] = sa.null()
        if step_workflows:
            step = sa.case((c.workflow.in_(list(step_workflows)), _ActiveStep(r.output)), else_=sa.null())
        query = (
            sa.select(p.requirement_id, p.posted_at, step, touched, *CARD_COLUMNS)
            .join_from(pauses, cards, c.run_id == p.run_id)
            .join(runs, sa.and_(r.run_id == p.run_id, r.requirement_id == p.requirement_id))
            .where(p.status == "open", c.team_id == team, r.status == RunStatus.PAUSED.value)
            .order_by(p.posted_at.desc(), p.requirement_id)
        )
        rows = await self._tx(lambda conn: conn.execute(query).all(), write=False)
        return [OpenPause(row[0], Card(*row[4:]), row[1], row[2], bool(row[3])) for row in rows]

    async def cards_started_by(self, user: str, team: str, limit: int = MOST_RUNS) -> list[Card]:
        """The runs `user` started in workspace `team`, newest first."""
        c = cards.c
        query = (
            sa.select(*CARD_COLUMNS)
            .where(c.started_by == user, c.team_id == team)
            .order_by(c.created_at.desc())
            .limit(limit)
        )
        return await self._tx(lambda conn: [Card(*r) for r in conn.execute(query)], write=False)

    async def viewed(self, user: str, page: int, team: str) -> None:
        """Remember that `user` (of workspace `team`) looks at page `page` of their Home (a refresh keeps
        them there)."""
        c = home_viewers.c

        def body(conn: Connection) -> None:
            values = {"page": page, "opened_at": time.time(), "team_id": team}
            if conn.execute(home_viewers.update().where(c.user_id == user).values(**values)).rowcount:
                return
            try:
                with conn.begin_nested():
                    conn.execute(home_viewers.insert().values(user_id=user, **values))
            except IntegrityError:  # inserted meanwhile by another request of theirs
                conn.execute(home_viewers.update().where(c.user_id == user).values(**values))

        await self._tx(body)

    async def viewers(self, team: str) -> dict[str, int]:
        """Who opened the Home in workspace `team` (most recent first, at most MOST_VIEWERS), with the page
        each is on. Asked after every delivered pause or decision, so it is one statement on the bare driver."""
        rows = await self.db.run_hot(
            lambda tx: tx.all(self.db.prepare(_VIEWERS), {"b_team": team}), write=False, tables=self._tables
        )
        return {user: page for user, page in rows}
