"""Reassignment: someone who may answer a pause hands it to another person, who may then answer it too.

A hand-over passes what its giver has and no more (`Access.may_hand_over` decides): only someone who may
answer by the step's own rules hands over, never someone it was handed to; never to the run's starter
where the step forbids self-approval; and on a pause decided by votes (N of M) it passes the giver's one
vote: they hand over once, before voting, and then no longer vote themselves. The transaction that records
it checks the last two again under a lock on the pause, so a vote and a hand-over clicked at once by the
same person cannot both count.

The hand-over is one transaction: its row, its line in kern's audit log, and the notice owed to the new
person (a thread message mentioning them, delivered through the outbox like every other message, so a
Slack error or a crash does not lose it). The pause message then says who it was handed to.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from bot import blocks as ui
from bot.approvals.voices import Refused, check_handover
from bot.store.tables import handovers
from bot.store.transactions import insert_once
from kern.db.hot import INSERT_AUDIT, Tx, dumps_or_none

if TYPE_CHECKING:
    from bot.approvals.types import Check, Loaded
    from bot.surfaces.interactions import Ack, Interactions
    from bot.surfaces.modals import Modals

TO_BLOCK, NOTE_BLOCK = "to", "note"


def handover_modal(requirement_id: str, step_name: str) -> dict[str, Any]:
    """A user select (whom to hand the pause to) and an optional note."""
    blocks = [
        ui.section(f"Hand *{ui.escape(step_name)}* to someone else. They are told, and may answer it too."),
        {
            "type": "input",
            "block_id": TO_BLOCK,
            "label": ui.plain("Hand it to"),
            "element": {"type": "users_select", "action_id": "v", "placeholder": ui.plain("Choose a person")},
        },
        {
            "type": "input",
            "block_id": NOTE_BLOCK,
            "optional": True,
            "label": ui.plain("Note for them"),
            "element": {"type": "plain_text_input", "action_id": "v", "multiline": True, "max_length": 1000},
        },
    ]
    return ui.modal(ui.V_HANDOVER, "Hand over", blocks, metadata=requirement_id, submit="Hand over")


class Handovers:
    """The hand-over button, form and rule (a person a pause was handed to may answer it)."""

    def __init__(self, interactions: Interactions, modals: Modals) -> None:
        self.ix = interactions
        self.modals = modals
        self.db = interactions.store.db

    async def on_open(self, ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        self.ix.background.spawn(
            self.modals.open_form(
                body,
                action["value"],
                lambda ld: handover_modal(ld.req.requirement_id, ld.req.step_name),
                check=self._may_hand_over(None),
            )
        )

    def _may_hand_over(self, to: str | None) -> Check:
        access = self.ix.access
        return lambda ld, by: access.may_hand_over(ld.entry, ld.card, by, ld.req, to)

    async def on_submit(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = view["state"]["values"]
        to = (values.get(TO_BLOCK, {}).get("v") or {}).get("selected_user")
        note = ((values.get(NOTE_BLOCK, {}).get("v") or {}).get("value") or "").strip() or None
        by = body["user"]["id"]
        if not to:
            await ack(response_action="errors", errors={TO_BLOCK: "Choose the person to hand it to."})
            return
        if to == by:
            await ack(response_action="errors", errors={TO_BLOCK: "Choose someone other than yourself."})
            return
        await ack()
        self.ix.background.spawn(self.hand_over(view["private_metadata"], by, to, note))

    async def hand_over(self, requirement_id: str, by: str, to: str, note: str | None) -> None:
        """Record the hand-over (if `by` may hand it to `to`: `Access.may_hand_over`), owe the notice, and
        show it on the message. A refusal is told to `by` privately, and nothing is recorded."""
        loaded = await self.ix.ready_for(by, requirement_id, check=self._may_hand_over(to))
        if loaded is None:
            return
        voting = loaded.entry.approvers_for(loaded.req.step_name).takes_votes(loaded.req.kind)
        run_id, outbox = loaded.run.run_id, self.ix.runner.outbox
        at = time.time()
        text = f"<@{to}>, <@{by}> handed you *{ui.escape(loaded.req.step_name)}* to answer" + (
            f": {ui.quote(note, 1000)}" if note else "."
        )

        def recorded(tx: Tx) -> None:  # a first hand-over to this person: its audit line and what it owes Slack
            if voting:
                check_handover(self.db, tx, requirement_id, by, to)
            tx.execute(self.db.prepare(INSERT_AUDIT), _audit(loaded, by, to, note, at))
            detail = {"text": text, "to": to}
            outbox.owing.owe(tx, run_id, "notice", requirement_id, detail)
            outbox.owing.redraw(tx, run_id, requirement_id)  # "handed to" on the pause message

        values = {"requirement_id": requirement_id, "to_user": to, "run_id": run_id, "by_user": by, "note": note}
        values["team_id"] = loaded.card.team_id
        card = loaded.card
        try:
            first = await insert_once(self.db, handovers, {**values, "at": at}, if_first=recorded)
        except Refused as exc:
            await self.ix.gateway.tell(card.channel, by, str(exc), card.ts, None)
            return
        if not first:
            await self.ix.gateway.tell(card.channel, by, f"<@{to}> was already handed this pause.", card.ts, None)
            return
        await outbox.deliver(run_id)
        if self.ix.on_stale_view is not None:
            self.ix.on_stale_view(to)  # their App Home now lists it
        await self.ix.gateway.tell(card.channel, by, f"Handed to <@{to}>; they are told.", card.ts, None)


def _audit(loaded: Loaded, by: str, to: str, note: str | None, at: float) -> dict[str, Any]:
    return {
        "run_id": loaded.run.run_id,
        "requirement_id": loaded.req.requirement_id,
        "workflow_name": loaded.entry.name,
        "step_name": loaded.req.step_name,
        "kind": loaded.req.kind,
        "actor": by,
        "decision": "handover",
        "note": note,
        "data": dumps_or_none({"to": to}),
        "at": at,
    }
