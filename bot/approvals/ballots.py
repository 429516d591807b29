"""N of M: votes on a pause that needs more than one person (`Approvers(required=2)`).

A vote is a row per person and pause, inserted once (a second click by the same person changes nothing), in
one transaction with its line in kern's audit log, the tally read back and, unless that tally decides the
pause (its decided message then shows everything), the redraw of the pause message it owes Slack. The
transaction takes a lock on the pause (`bot.approvals.voices`) before it reads the tally, so the last of
several votes committing at once sees all of them: no resolution is missed. The vote that reaches `required`
approvals (or `reject_required` rejections) resolves the pause through kern's compare-and-set, so however many
replicas count at once, the run resumes exactly once.

One pass per click: checked (`bot.approvals.access`), written with what it owes and counted (`Ballots.cast`),
decided (`Voting.vote`), and handed to delivery (the outbox) or to the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bot.approvals.voices import Refused, check_vote
from bot.delivery.outbox import Outbox
from bot.pause_history import Tally
from bot.registry import BotWorkflow
from bot.slack.gateway import SlackGateway
from bot.store import Card, insert_once
from bot.store.tables import votes
from bot.store.votes import tally_in
from kern.db.base import BaseDb
from kern.db.hot import INSERT_AUDIT, Tx
from kern.run.requirement import StepRequirement


class Ballots:
    """Records votes and reads tallies, in the bot's database."""

    def __init__(self, db: BaseDb) -> None:
        self.db = db

    async def cast(
        self,
        req: StepRequirement,
        card: Card,
        workflow_name: str,
        user: str,
        *,
        approve: bool,
        note: str | None,
        owes: Callable[[Tx, Tally], None] | None = None,
    ) -> tuple[bool, Tally]:
        """Record `user`'s vote on the pause `req`, with its line in kern's audit log and what it `owes`
        (given the votes with it), in one transaction; and the votes on it now. False if they had voted on
        it already (nothing changes, nothing owed). Raises `Refused` (nothing written) if they handed the
        pause on meanwhile (`bot.approvals.voices`)."""
        at = time.time()
        run_id = card.run_id
        audit_line = {
            "run_id": run_id,
            "requirement_id": req.requirement_id,
            "workflow_name": workflow_name,
            "step_name": req.step_name,
            "kind": req.kind,
            "actor": user,
            "decision": "vote_approve" if approve else "vote_reject",
            "note": note,
            "data": None,
            "at": at,
        }

        now, inserted = Tally(), False

        def counted(tx: Tx) -> None:
            nonlocal inserted
            check_vote(self.db, tx, req.requirement_id, user)
            tx.execute(self.db.prepare(INSERT_AUDIT), audit_line)
            inserted = True

        values: dict[str, Any] = {"requirement_id": req.requirement_id, "user_id": user, "run_id": run_id}
        values["team_id"] = card.team_id
        values.update(approve=approve, note=note, at=at)

        def read_tally(tx: Tx) -> None:
            nonlocal now
            now = tally_in(tx, self.db, req.requirement_id)
            if inserted and owes is not None:
                owes(tx, now)

        first = await insert_once(self.db, votes, values, if_first=counted, also=read_tally)
        return first, now


class Voting:
    """A click that counts as a vote: record it with the redraw of the pause message it owes (the tally),
    hand that to delivery, tell the voter privately, and resolve the pause once the votes reach the
    threshold."""

    def __init__(self, ballots: Ballots, gateway: SlackGateway, outbox: Outbox) -> None:
        self.ballots = ballots
        self.gateway = gateway
        self.outbox = outbox

    async def vote(
        self,
        entry: BotWorkflow,
        card: Card,
        run_id: str,
        req: StepRequirement,
        user: str,
        *,
        approve: bool,
        note: str | None,
        response_url: str | None,
    ) -> bool:
        """Record the vote on a pause its rules decide by votes (`Approvers.takes_votes`); True if the votes
        now resolve the pause (`req` is resolved: continue the run)."""
        rules = entry.approvers_for(req.step_name)

        def owes(tx: Tx, tally: Tally) -> None:  # the tally on the pause message, unless the votes decide it
            if not (tally.rejected(rules) or tally.approved(rules)):
                self.outbox.owing.redraw(tx, run_id, req.requirement_id)

        try:
            first, tally = await self.ballots.cast(req, card, entry.name, user, approve=approve, note=note, owes=owes)
        except Refused as exc:
            await self.gateway.tell(card.channel, user, str(exc), card.ts, response_url)
            return False
        if tally.rejected(rules):  # a reject (or enough of them) decides at once, even after approvals
            by = user if user in tally.rejections else tally.rejections[-1]
            req.reject(feedback=tally.notes.get(by), by=by)
            return True
        if tally.approved(rules):
            by = user if user in tally.approvals else tally.approvals[-1]
            req.confirm(by=by, note=tally.notes.get(by))
            return True
        own = "approval" if approve else "rejection"
        text = (
            f"Your {own} is counted. {tally.line(rules)}."
            if first
            else f"You have already voted on this pause; each person counts once. {tally.line(rules)}."
        )
        if first:
            await self.outbox.deliver(run_id)
        await self.gateway.tell(card.channel, user, text, card.ts, response_url)
        return False
