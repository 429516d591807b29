"""Where a conversation's answer streams (the `kern_bot_streams` table, bot/store/tables.py): a row per streamed
message, written as its stream starts and moved through its states (streaming, stopped, kept, final) as the
answer goes on; read by whichever process delivers the answer (bot/delivery/streams.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa

from bot.store.tables import streams
from bot.store.transactions import StoreBase, insert_once
from kern.db.hot import Tx

STREAMING, STOPPED, KEPT, FINAL = "streaming", "stopped", "kept", "final"

_OF_RUN = (
    sa.select(streams.c.ts, streams.c.channel, streams.c.state)
    .where(streams.c.run_id == sa.bindparam("b_run_id"))
    .order_by(streams.c.started_at, streams.c.ts)
)
_STATE = (
    streams.update()
    .where(streams.c.run_id == sa.bindparam("b_run_id"), streams.c.ts == sa.bindparam("b_ts"))
    .values(state=sa.bindparam("b_state"))
)


@dataclass
class StreamedMessage:
    """One message an answer streamed into: where it is, and how far it got (`state`)."""

    ts: str
    channel: str
    state: str


class StreamRows(StoreBase):
    """The rows of `kern_bot_streams`."""

    async def started(self, run_id: str, channel: str, ts: str, team: str) -> None:
        """Record a stream just started (its message `ts`), before anything more is sent to it."""
        row = {"run_id": run_id, "ts": ts, "channel": channel, "state": STREAMING, "started_at": time.time()}
        await insert_once(self.db, streams, row | {"team_id": team})

    async def of_run(self, run_id: str) -> list[StreamedMessage]:
        """The run's streamed messages, oldest first."""
        rows = await self._hot(lambda tx: tx.all(self.db.prepare(_OF_RUN), {"b_run_id": run_id}), write=False)
        return [StreamedMessage(*row) for row in rows]

    async def mark(self, run_id: str, ts_list: list[str], state: str) -> None:
        """Move the run's messages `ts_list` to `state`, in one transaction."""
        if not ts_list:
            return
        statement = self.db.prepare(_STATE)

        def body(tx: Tx) -> None:
            for ts in ts_list:
                tx.execute(statement, {"b_run_id": run_id, "b_ts": ts, "b_state": state})

        await self._hot(body)
