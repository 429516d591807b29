"""N of M: votes on a pause that needs more than one person (`Approvers(required=2)`).

A vote is a row per person and pause, inserted once (a second click by the same person changes
nothing) in the same transaction as its line in kern's audit log. After each vote the tally is read
back; the vote that reaches `required` approvals (or `reject_required` rejections) resolves the pause
through kern's compare-and-set, so however many replicas count at once, the run resumes exactly once.
Because every vote is committed before its tally is read, the last vote to commit always sees the
threshold reached: no resolution is missed.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from bot import pause_notes
from bot.gateway import SlackGateway
from bot.pause_notes import Tally, takes_votes
from bot.presenter import Presenter
from bot.registry import BotWorkflow
from bot.store import BotStore, Card, insert_once
from bot.tables import votes
from bot.voices import Refused, check_vote
from kern.db.base import BaseDb
from kern.db.hot import INSERT_AUDIT, Tx
from kern.run.requirement import StepRequirement

_VOTE_AT = sa.select(votes.c.at).where(
    votes.c.requirement_id == sa.bindparam("b_requirement_id"), votes.c.user_id == sa.bindparam("b_user_id")
)


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
    ) -> bool:
        """Record `user`'s vote on the pause `req`, with its line in kern's audit log, in one transaction;
        False if they had voted on it already (nothing changes). Raises `Refused` (nothing written) if
        they handed the pause on meanwhile (`bot.voices`)."""
        at = time.time()  # also this vote's token: the row holds it only if this call inserted it
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

        def audit_if_ours(tx: Tx) -> None:
            row = tx.first(self.db.prepare(_VOTE_AT), {"b_requirement_id": req.requirement_id, "b_user_id": user})
            if row is not None and row[0] == at:
                check_vote(self.db, tx, req.requirement_id, user)
                tx.execute(self.db.prepare(INSERT_AUDIT), audit_line)

        values: dict[str, Any] = {"requirement_id": req.requirement_id, "user_id": user, "run_id": run_id}
        values["team_id"] = card.team_id
        values.update(approve=approve, note=note, at=at)
        return await insert_once(self.db, votes, values, also=audit_if_ours)

    async def tally(self, requirement_id: str) -> Tally:
        return await pause_notes.tally(self.db, requirement_id)


class Voting:
    """A click that counts as a vote: record it, tell the voter privately, show the tally on the pause
    message, and resolve the pause once the votes reach the threshold."""

    def __init__(self, ballots: Ballots, gateway: SlackGateway, presenter: Presenter, store: BotStore) -> None:
        self.ballots = ballots
        self.gateway = gateway
        self.presenter = presenter
        self.store = store

    @staticmethod
    def applies(entry: BotWorkflow, req: StepRequirement) -> bool:
        return takes_votes(entry.approvers_for(req.step_name), req.kind)

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
        """Record the vote; True if the votes now resolve the pause (`req` is resolved: continue the run)."""
        rules = entry.approvers_for(req.step_name)
        try:
            first = await self.ballots.cast(req, card, entry.name, user, approve=approve, note=note)
        except Refused as exc:
            await self.gateway.tell(card.channel, user, str(exc), card.ts, response_url)
            return False
        tally = await self.ballots.tally(req.requirement_id)
        if tally.rejected(rules):  # a reject (or enough of them) decides at once, even after approvals
            by = user if user in tally.rejections else tally.rejections[-1]
            req.reject(feedback=tally.notes.get(by), by=by)
            return True
        if tally.approved(rules):
            req.confirm(by=user if user in tally.approvals else tally.approvals[-1])
            return True
        own = "approval" if approve else "rejection"
        text = (
            f"Your {own} is counted. {tally.line(rules)}."
            if first
            else f"You have already voted on this pause; each person counts once. {tally.line(rules)}."
        )
        await self.gateway.tell(card.channel, user, text, card.ts, response_url)
        await self.presenter.redraw(entry, req, card)  # the tally on every copy of the pause message
        return False
