"""`@approval` records resolved elsewhere: through kern's approvals API (`db.update_approval`,
`db.resolve_approval`, AgentOS's `/approvals/{id}/resolve`), by any process, not on the tool-call card.

Why a sweep, not a hook on the store's update: the record may be resolved by a process that runs no bot
(an AgentOS server, a script, an admin console), where no hook of the bot's runs. The open pauses' records
are rows written in the transaction that opens the pause (bot/store/approval_rows.py); every sweep of every
bot process asks, in one join, which of them were resolved (nothing to do is one query over a table that
holds only open `@approval` pauses). So the thread is updated within one sweep interval of the resolution,
whoever made it, and a bot process that was down when it happened catches up at its first sweep.

For each such pause: each call whose record is resolved gets that decision, recorded as a tool decision
(compare-and-set per call, with the redraw of the pause message it owes: the card shows the call decided,
by whom, through the record); once every call of the pause is decided, the run continues as after the last
click (`ToolCalls.calls_decided`). Two bot processes sweeping at once record each decision once, and the
run is continued once: kern's claim of a paused run is a compare-and-set, and the loser does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bot import blocks as ui
from bot.slack.workspaces import acting_for
from bot.store import approval_rows
from kern.agent.agent import apply_approval
from kern.db.hot import Tx
from kern.run.agent import RunRequirement

if TYPE_CHECKING:
    from bot.approvals.types import Loaded
    from bot.delivery.outbox import Outbox
    from bot.runs.background import Background
    from bot.store import BotStore

    # Loads an open pause by its requirement id (`Interactions.load`): the pause, or why it is not open.
    Load = Callable[[str], Awaitable[Loaded | str]]
    # Continues a run whose calls are all decided, else shows those decided (`ToolCalls.calls_decided`).
    CallsDecided = Callable[[Loaded, str], Awaitable[None]]

log = logging.getLogger("kern_bot")
BY_KERN = "kern"  # the bot acting on a record's decision: nobody to tell privately


def summary(record: dict[str, Any]) -> str:
    """The line a call decided through its approval record shows: the outcome, who resolved it (a Slack
    user is mentioned, any other name shown as text) and when."""
    by = record.get("resolved_by")
    name = ui.who(by) if by and by.startswith(("U", "W")) else f"*{ui.escape(by or 'someone')}*"
    approved = record.get("status") == "approved"
    verb = ":white_check_mark: Approved" if approved else ":no_entry_sign: Rejected"
    note = ((record.get("resolution_data") or {}).get("note") or "") if not approved else ""
    line = f"{verb} by {name} at {ui.slack_time(record.get('resolved_at') or 0.0)}, on its approval record"
    return line + (f": {ui.quote(note, 500)}" if note else "")


class ResolvedElsewhere:
    """Finds open tool-call pauses whose approval records were resolved outside Slack, and acts on them."""

    def __init__(
        self, store: BotStore, outbox: Outbox, background: Background, load: Load, calls_decided: CallsDecided
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.background = background
        self.load = load
        self.calls_decided = calls_decided
        self._settling: set[str] = set()  # pauses this process is acting on now (a slow run outlasts a sweep)

    async def sweep(self) -> None:
        """One look (a sweep's hook): each pause found is settled in the background, so a run that goes on
        into a slow step delays neither the sweep nor the other pauses."""
        for found in await approval_rows.resolved(self.store.db):
            if found.requirement_id in self._settling:
                continue
            self._settling.add(found.requirement_id)
            self.background.spawn(self._settle_alone(found))

    async def _settle_alone(self, found: approval_rows.Settled) -> None:
        try:
            with acting_for(found.team_id):
                await self.settle(found.requirement_id)
        finally:
            self._settling.discard(found.requirement_id)

    async def settle(self, requirement_id: str) -> None:
        """Give each call of the pause whose record was resolved that decision, then continue the run if
        every call is decided (else redraw the pause message with the calls decided so far)."""
        loaded = await self.load(requirement_id)
        if isinstance(loaded, str):  # decided meanwhile, or its run moved on or is gone: nothing waits on it
            await approval_rows.forget(self.store.db, requirement_id)
            return
        run_id, team = loaded.card.run_id, loaded.card.team_id

        def owes(tx: Tx) -> None:
            self.outbox.owing.redraw(tx, run_id, requirement_id)

        for index, call in enumerate(loaded.req.executor_requirements or []):
            if not call.approval_id or call.tool_execution.approval_type != "required":
                continue
            record = await self.store.db.aget_approval(call.approval_id)
            if record is None or record["status"] == "pending":
                continue
            decided = RunRequirement.from_dict(call.to_dict())
            apply_approval(decided, record)
            by = record.get("resolved_by") or BY_KERN
            if await self.store.record_tool_decision(
                requirement_id, index, decided.to_dict(), by, summary(record), team=team, owes=owes
            ):
                log.info("tool call %d of pause %s decided on its approval record by %s", index, requirement_id, by)
        await self.calls_decided(loaded, BY_KERN)
