"""Slack's assistant threads of the conversational entry (`BotAgent`): the bot learns of one from its
`assistant_thread_started` event and keeps, per workspace, channel and thread, who opened it, the channel
they are looking at (its context, which `assistant_thread_context_changed` moves) and whether its title was
set. A message in a DM thread the bot has no row for is an ordinary DM conversation."""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa

from bot.store.tables import assistant_threads as threads
from bot.store.transactions import StoreBase, insert_once


@dataclass(frozen=True)
class AssistantThread:
    """One assistant thread: `user` opened it; `viewing` is the channel they are looking at (None: none,
    or one the event did not name); `titled`: its title was set."""

    channel: str
    thread_ts: str
    user: str
    viewing: str | None
    titled: bool


def _key(team: str, channel: str, thread_ts: str) -> sa.ColumnElement[bool]:
    return sa.and_(threads.c.team_id == team, threads.c.channel == channel, threads.c.thread_ts == thread_ts)


class AssistantThreads(StoreBase):
    """The assistant threads of every workspace (`team`: `bot.slack.workspaces.team()`)."""

    async def started(self, team: str, channel: str, thread_ts: str, user: str, viewing: str | None) -> bool:
        """Record a thread just opened; False if it was known already (nothing changes then)."""
        values = {
            "team_id": team,
            "channel": channel,
            "thread_ts": thread_ts,
            "user_id": user,
            "context_channel": viewing,
            "titled": False,
            "started_at": time.time(),
        }
        return await insert_once(self.db, threads, values)

    async def viewing(self, team: str, channel: str, thread_ts: str, user: str, viewing: str | None) -> None:
        """The person now looks at `viewing`: the thread's context from here on (a thread whose start the bot
        missed is recorded now)."""
        insert = self.db.dialect_insert(threads).values(
            team_id=team,
            channel=channel,
            thread_ts=thread_ts,
            user_id=user,
            context_channel=viewing,
            titled=False,
            started_at=time.time(),
        )
        upsert = insert.on_conflict_do_update(
            index_elements=[threads.c.team_id, threads.c.channel, threads.c.thread_ts],
            set_={"context_channel": viewing},
        )
        await self._tx(lambda conn: conn.execute(upsert))

    async def get(self, team: str, channel: str, thread_ts: str) -> AssistantThread | None:
        """The thread, or None if `thread_ts` in `channel` is not an assistant thread the bot knows."""
        query = sa.select(
            threads.c.channel, threads.c.thread_ts, threads.c.user_id, threads.c.context_channel, threads.c.titled
        ).where(_key(team, channel, thread_ts))
        row = await self._tx(lambda conn: conn.execute(query).first(), write=False)
        return None if row is None else AssistantThread(row[0], row[1], row[2], row[3], bool(row[4]))

    async def claim_title(self, team: str, channel: str, thread_ts: str) -> bool:
        """True for exactly one caller per thread: the one that sets its title (its first message's turn)."""
        update = threads.update().where(_key(team, channel, thread_ts), threads.c.titled.is_(False))
        changed = await self._tx(lambda conn: conn.execute(update.values(titled=True)).rowcount)
        return bool(changed)
