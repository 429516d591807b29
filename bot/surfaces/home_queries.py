"""The App Home's reads and writes in kern-bot's tables: the open pauses and their cards, the runs a person
started, and who has the Home open (and on which page)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from bot.store import CARD_COLUMNS, BotStore, Card, PauseMessage
from bot.store.tables import cards, home_viewers, pauses

MOST_PAUSES = 200  # open pauses looked at, newest first
MOST_RUNS = 10  # runs listed under "Your runs"
MOST_VIEWERS = 200  # people refreshed when a pause opens or closes (the most recent to open the tab)
_VIEWERS = (
    sa.select(home_viewers.c.user_id, home_viewers.c.page)
    .where(home_viewers.c.team_id == sa.bindparam("b_team"))
    .order_by(home_viewers.c.opened_at.desc())
    .limit(MOST_VIEWERS)
)


class HomeQueries:
    """The Home's reads and writes in the bot's tables."""

    def __init__(self, store: BotStore) -> None:
        from bot.store.migrations import BOT

        self.db = store.db
        self._tables = BOT

    async def _tx(self, body: Callable[[Connection], Any], write: bool = True) -> Any:
        return await self.db.run_transaction(body, write=write, tables=self._tables)

    async def open_pauses(self, team: str, limit: int = MOST_PAUSES) -> list[tuple[PauseMessage, Card]]:
        """Pauses of workspace `team` whose message is not yet decided, newest first, with their run's card."""
        p, c = pauses.c, cards.c
        query = (
            sa.select(p.requirement_id, p.run_id, p.channel, p.ts, p.status, p.decided_by, p.outcome)
            .add_columns(*CARD_COLUMNS)
            .join_from(pauses, cards, c.run_id == p.run_id)
            .where(p.status == "open", c.team_id == team)
            .order_by(p.posted_at.desc())
            .limit(limit)
        )
        rows = await self._tx(lambda conn: conn.execute(query).all(), write=False)
        return [(PauseMessage(*r[:7]), Card(*r[7:])) for r in rows]

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
