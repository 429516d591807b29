"""Who may do what, checked on every request from the database (the run's card: its channel and who
started it) and Slack (group and channel membership), never from the request's payload."""

from __future__ import annotations

from bot import pause_notes
from bot.gateway import SlackGateway
from bot.policy import Approvers, Audience
from bot.registry import BotWorkflow
from bot.store import Card
from bot.text import escape
from kern.db.base import BaseDb
from kern.run.requirement import StepRequirement


class Access:
    """Answers "may this user start / answer / cancel / read this run?" with None (yes) or the reason."""

    def __init__(self, gateway: SlackGateway, db: BaseDb | None = None) -> None:
        self.gateway = gateway
        self.db = db  # for what people did to a pause: hand-overs, escalations

    async def _listed(self, user: str, users: tuple[str, ...], groups: tuple[str, ...], channel: str | None) -> bool:
        """`user` is in `users`, in one of `groups`, or (with `channel`) a member of that channel."""
        if user in users:
            return True
        for group in groups:
            members = await self.gateway.call("usergroups_users_list", usergroup=group)
            if members and user in members.get("users", []):
                return True
        if channel:
            members = await self.gateway.call("conversations_members", channel=channel)
            if members and user in members.get("members", []):
                return True
        return False

    async def _approver(self, rules: Approvers, user: str, card: Card) -> bool:
        if rules.anyone:
            return True
        return await self._listed(user, rules.users, rules.groups, card.channel if rules.channel_members else None)

    async def may_answer(self, entry: BotWorkflow, card: Card, user: str, step: str | None = None) -> str | None:
        """Why `user` may not answer this run's pauses (of the step named `step`), or None if they may."""
        rules = entry.approvers_for(step)
        if rules.forbid_self_approval and user == card.started_by:
            return "You started this run, so someone else has to answer it."
        if await self._approver(rules, user, card):
            return None
        return f"Only {rules.describe()} may answer this."

    async def may_answer_pause(
        self,
        entry: BotWorkflow,
        card: Card,
        user: str,
        req: StepRequirement,
        by_rules: str | None = "",
        notes: pause_notes.Notes | None = None,
    ) -> str | None:
        """Why `user` may not answer this pause, or None: its step's approvers, anyone it was handed to,
        and, once it escalated, the escalation group. `by_rules` is the answer of `may_answer` when the
        caller already knows it ("" to ask); `notes`, the pause's notes when the caller read them already."""
        refusal = await self.may_answer(entry, card, user, req.step_name) if by_rules == "" else by_rules
        if refusal is None or self.db is None:
            return refusal
        if notes is None:
            notes = (await pause_notes.read_notes(self.db, [req.requirement_id], with_votes=False))[req.requirement_id]
        if notes.handed_to(user):
            return None
        up = entry.approvers_for(req.step_name).escalate_to
        if up is not None and notes.escalated_at is not None and await self._approver(up, user, card):
            return None
        return refusal

    async def _in(self, audience: Audience, entry: BotWorkflow, user: str, card: Card | None, channel: str) -> bool:
        if audience.anyone:
            return True
        if audience.starter and card is not None and user == card.started_by:
            return True
        if audience.approvers and card is not None and await self._approver(entry.approvers, user, card):
            return True
        where = (card.channel if card is not None else channel) if audience.channel_members else None
        return await self._listed(user, audience.users, audience.groups, where)

    async def may_start(self, entry: BotWorkflow, user: str, channel: str) -> str | None:
        if await self._in(entry.starters, entry, user, None, channel):
            return None
        return f"Only {entry.starters.describe(entry.approvers)} may start `{escape(entry.name)}`."

    async def may_cancel(self, entry: BotWorkflow, card: Card, user: str) -> str | None:
        if await self._in(entry.cancellers, entry, user, card, card.channel):
            return None
        return f"Only {entry.cancellers.describe(entry.approvers)} may cancel this run."

    async def may_read(self, entry: BotWorkflow, card: Card, user: str) -> str | None:
        if await self._in(entry.readers, entry, user, card, card.channel):
            return None
        return f"Only {entry.readers.describe(entry.approvers)} may see this run."
