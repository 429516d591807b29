"""Who may do what, checked on every request from the database (the run's card: its channel and who
started it) and Slack (group and channel membership), never from the request's payload.

Every route to a decision on a pause asks here (a button, a form, a vote, a DM copy, the App Home, a
hand-over, a standing approval), so a rule holds on all of them. A hand-over or a grant never gives more
than its giver had: only those the step's own rules name hand over or give a grant; a hand-over passes its
giver's one vote on an N-of-M pause; a grant allows only at its own step, and only where its giver could
answer; and where self-approval is forbidden the run's starter answers through none of them.

A run started in a direct message with the bot (an "im", whose conversation id starts with "D") is private
to that conversation: rules that open a run to anyone, or to its channel's members, resolve to the DM's
members, i.e. the person who started it; only people a rule names (users, groups) reach it from outside.
Reading is never open by way of open approvers: an approver who is "anyone" reads as a member of the
run's channel (those who see its pause messages).
"""

from __future__ import annotations

from bot.approvals import voices
from bot.blocks.text import escape, unseen
from bot.pause_history import Notes
from bot.policy import Approvers, Audience
from bot.registry import BotWorkflow
from bot.slack.gateway import SlackGateway
from bot.store import Card
from bot.store.pause_notes import read_notes
from kern.db.base import BaseDb
from kern.run.requirement import StepRequirement

# Members asked of Slack per conversations.members page (Slack's default is 100; it recommends at most 200:
# https://docs.slack.dev/reference/methods/conversations.members).
MEMBERS_PAGE = 200
MOST_MEMBER_PAGES = 10  # a channel of more members than that has someone besides a run's starter
SELF_APPROVAL = "You started this run, so someone else has to answer it."


def _self_refused(rules: Approvers, card: Card, user: str) -> bool:
    return rules.forbid_self_approval and user == card.started_by


def is_private(channel: str) -> bool:
    """True for a direct message conversation (Slack's ids for an im start with "D")."""
    return channel.startswith("D")


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
        return channel is not None and bool(channel) and await self.member(user, channel)

    async def member(self, user: str, channel: str) -> bool:
        """`user` is a member of `channel`, as Slack says: every page of conversations.members (its
        `response_metadata.next_cursor`, empty at the end), stopping at the page that names them. A failed
        call answers no."""
        cursor, seen = "", set[str]()
        while True:
            page = await self.gateway.call(
                "conversations_members", channel=channel, limit=MEMBERS_PAGE, cursor=cursor or None
            )
            if not page:
                return False
            if user in page.get("members", []):
                return True
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or ""
            if not cursor or cursor in seen:  # the end (or a cursor that loops)
                return False
            seen.add(cursor)

    async def _in_conversation(self, user: str, card: Card) -> bool:
        """`user` is in the run's conversation: the starter for a DM, else a member of its channel."""
        if is_private(card.channel):
            return user == card.started_by
        return await self.member(user, card.channel)

    async def _approver(self, rules: Approvers, user: str, card: Card) -> bool:
        if is_private(card.channel):  # open and channel rules mean the DM's members; named people still count
            if (rules.anyone or rules.channel_members) and user == card.started_by:
                return True
            return await self._listed(user, rules.users, rules.groups, None)
        if rules.anyone:
            return True
        return await self._listed(user, rules.users, rules.groups, card.channel if rules.channel_members else None)

    async def may_answer(self, entry: BotWorkflow, card: Card, user: str, step: str | None = None) -> str | None:
        """Why `user` may not answer this run's pauses (of the step named `step`) by that step's own rules,
        or None if they may. Standing approvals are given and applied by this rule alone."""
        rules = entry.approvers_for(step)
        if _self_refused(rules, card, user):
            return SELF_APPROVAL
        if await self._approver(rules, user, card):
            return None
        return f"Only {rules.describe()} may answer this."

    async def _notes(self, req: StepRequirement, notes: Notes | None, votes: bool) -> Notes:
        if notes is not None or self.db is None:
            return notes or Notes()
        return (await read_notes(self.db, [req.requirement_id], with_votes=votes))[req.requirement_id]

    async def _by_rules(
        self, entry: BotWorkflow, card: Card, user: str, req: StepRequirement, by_rules: str | None, notes: Notes
    ) -> str | None:
        """The step's own rules: its approvers, and once it escalated, the escalation group (never a hand-over)."""
        refusal = await self.may_answer(entry, card, user, req.step_name) if by_rules == "" else by_rules
        if refusal is None or refusal == SELF_APPROVAL:
            return refusal
        up = entry.approvers_for(req.step_name).escalate_to
        if up is not None and notes.escalated_at is not None and await self._approver(up, user, card):
            return None
        return refusal

    async def may_answer_pause(
        self,
        entry: BotWorkflow,
        card: Card,
        user: str,
        req: StepRequirement,
        by_rules: str | None = "",
        notes: Notes | None = None,
    ) -> str | None:
        """Why `user` may not answer (or vote on) this pause, or None: its step's approvers, once it
        escalated the escalation group, and anyone it was handed to. Never the run's starter where the step
        forbids self-approval, whatever was handed to them; and on a pause decided by votes, not someone who
        handed it on (a hand-over passes their one vote, it does not add one). `by_rules` is the answer of
        `may_answer` when the caller already knows it ("" to ask); `notes`, the pause's notes when the
        caller read them already."""
        rules = entry.approvers_for(req.step_name)
        if _self_refused(rules, card, user):
            return SELF_APPROVAL  # whatever was handed to them or escalated
        voting = rules.takes_votes(req.kind)
        refusal = await self.may_answer(entry, card, user, req.step_name) if by_rules == "" else by_rules
        if refusal is None and not voting:
            return None  # the rules let them, and nothing done to this pause can take it away
        notes = await self._notes(req, notes, votes=False)
        if voting and (to := notes.handed_on_by(user)) is not None:
            return voices.vote_passed(to)
        refusal = await self._by_rules(entry, card, user, req, refusal, notes)
        if refusal is None or notes.handed_to(user):
            return None
        return refusal

    async def may_hand_over(
        self, entry: BotWorkflow, card: Card, by: str, req: StepRequirement, to: str | None = None
    ) -> str | None:
        """Why `by` may not hand this pause (to `to`, when known), or None. A hand-over passes what its giver
        has and no more: only someone who may answer by the step's own rules hands over (not someone it was
        handed to); on a pause decided by votes, only once and only before voting (it passes their one
        vote); and never to the run's starter where the step forbids self-approval."""
        rules = entry.approvers_for(req.step_name)
        voting = rules.takes_votes(req.kind)
        notes = await self._notes(req, None, votes=voting)
        refusal = await self._by_rules(entry, card, by, req, "", notes)
        if refusal is not None:
            if refusal != SELF_APPROVAL and notes.handed_to(by):
                return "This pause was handed to you: you may answer it, but only its own approvers may hand it on."
            return refusal
        if voting and notes.voted(by):
            return voices.VOTED
        if voting and (earlier := notes.handed_on_by(by)) is not None:
            return voices.handed_already(earlier)
        if to is not None and _self_refused(rules, card, to):
            return f"<@{to}> started this run, and its rules forbid them to answer it: hand it to someone else."
        return None

    async def may_grant(self, entry: BotWorkflow, card: Card, user: str, req: StepRequirement) -> str | None:
        """Why `user` may not give a standing approval ("always allow this tool") at this pause, or None. A
        grant outlives the pause, so only the step's own approvers give one: not someone it was handed to,
        nor an escalation group (they answer this pause, not the step's later ones)."""
        refusal = await self.may_answer(entry, card, user, req.step_name)
        if refusal is None or refusal == SELF_APPROVAL:
            return refusal
        return f"{refusal} Only they may allow a tool always, at this step."

    async def may_apply_grant(self, entry: BotWorkflow, card: Card, granted_by: str, step: str | None) -> bool:
        """Whether a standing approval given by `granted_by` at the step `step` may decide a pause of that
        step in this run: only if they could answer it themselves by the step's own rules here (not, say,
        as this run's starter). A grant without a step (made before grants named theirs) decides nothing."""
        return step is not None and await self.may_answer(entry, card, granted_by, step) is None

    async def _in(
        self, audience: Audience, entry: BotWorkflow, user: str, card: Card | None, channel: str, reading: bool = False
    ) -> bool:
        """`user` is in `audience` for `card`'s run (None: a run not started yet, in `channel`). `reading`:
        open approvers count as the run's channel's members, not as anyone."""
        if audience.anyone and (card is None or not is_private(card.channel)):
            return True
        if audience.starter and card is not None and user == card.started_by:
            return True
        if audience.approvers and card is not None:
            if reading and entry.approvers.anyone:
                if await self._in_conversation(user, card):
                    return True
            elif await self._approver(entry.approvers, user, card):
                return True
        if audience.anyone or audience.channel_members:  # (anyone, here: a private run's, so its DM's members)
            if card is not None:
                if await self._in_conversation(user, card):
                    return True
            elif channel and await self.member(user, channel):
                return True
        return await self._listed(user, audience.users, audience.groups, None)

    async def may_start(self, entry: BotWorkflow, user: str, channel: str) -> str | None:
        """Why `user` may not start `entry` in `channel`, or None: its starters, then whether each pause it
        can make would have someone to answer it (`answerable`)."""
        if not await self._in(entry.starters, entry, user, None, channel):
            return f"Only {entry.starters.describe(entry.approvers)} may start `{escape(entry.name)}`."
        return await self.answerable(entry, user, channel)

    async def answerable(self, entry: BotWorkflow, starter: str, channel: str) -> str | None:
        """Why a run `starter` starts in `channel` could pause with nobody to answer it, or None. Where that
        depends on who starts (an approver who may not answer their own runs), on a group's members or the
        channel's (as Slack says now), it is checked here, before anything starts; rules that lock everyone
        out are refused at start-up (`BotWorkflow.check_answerable`). A Slack lookup that fails refuses nothing."""
        for step, rules, need in entry.pausing_rules():
            if not (rules.forbid_self_approval or need > 1 or is_private(channel)):
                continue  # anyone, a listed user or a member may answer; the run's starter among them
            people = await self._possible(rules, starter, channel)
            problem = rules.shortfall(frozenset(people), starter, need) if people is not None else None
            if problem is not None:
                return (
                    f"`{escape(entry.name)}` was not started: its step *{escape(step)}* could have nobody to answer "
                    f"it here ({problem}). Ask someone else to start it, or its owner to name more approvers."
                )
        return None

    async def _possible(self, rules: Approvers, starter: str, channel: str) -> set[str] | None:
        """Everyone who could answer a pause under `rules` in a run `starter` starts in `channel` (escalation
        included), or None when that is not limited (anyone in a channel) or Slack could not say."""
        people = set(rules.users)
        if rules.anyone or rules.channel_members:
            if is_private(channel):
                people.add(starter)  # a DM's run is its member's
            elif rules.anyone:
                return None
            else:
                members = await self._members(channel)
                if members is None:
                    return None
                people |= members
        for group in rules.groups:
            found = await self.gateway.call("usergroups_users_list", usergroup=group)
            if not found:
                return None
            people |= set(found.get("users", []))
        if rules.escalate_to is not None:
            more = await self._possible(rules.escalate_to, starter, channel)
            if more is None:
                return None
            people |= more
        return people

    async def _members(self, channel: str) -> set[str] | None:
        """Every member of `channel` but the bot itself (every page of conversations.members), or None if
        Slack could not say."""
        cursor, found = "", set[str]()
        for _page in range(MOST_MEMBER_PAGES):
            page = await self.gateway.call(
                "conversations_members", channel=channel, limit=MEMBERS_PAGE, cursor=cursor or None
            )
            if not page:
                return None
            found |= set(page.get("members", []))
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or ""
            if not cursor:
                me = await self.gateway.call("auth_test")
                return found - {me.get("user_id")} if me else found
        return None  # a very large channel: not limited

    async def may_post_in(self, user: str, channel: str) -> str | None:
        """Why `user` may not have a run card posted into `channel`, a channel they picked (not the one they
        typed in): they must be a member of it, as Slack says. None if they may."""
        if await self.member(user, channel):
            return None
        return "You are not a member of that channel: pick a channel you are in."  # plain text (an input's error)

    async def may_cancel(self, entry: BotWorkflow, card: Card, user: str) -> str | None:
        if await self._in(entry.cancellers, entry, user, card, card.channel):
            return None
        return f"Only {entry.cancellers.describe(entry.approvers)} may cancel this run."

    async def may_read(self, entry: BotWorkflow, card: Card, user: str) -> str | None:
        """None if `user` may see the run, else the line that says nothing of whether it exists."""
        if await self._in(entry.readers, entry, user, card, card.channel, reading=True):
            return None
        return unseen(card.run_id[:12])
