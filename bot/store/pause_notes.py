"""What a pause message shows under "Who may answer" once people act on it: the votes so far (N of M),
hand-overs, an escalation. Read from the bot's tables whenever the message is drawn again, so every copy
(thread, DMs, approvals channel) shows the same."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from bot.policy import Approvers
from bot.store.tables import escalations, handovers, votes
from kern.db.base import BaseDb
from kern.db.hot import Tx
from kern.run import requirement as kinds

# The pauses people vote on: those resolved by approving or rejecting. Edits and form inputs are answers.
VOTING_KINDS = (kinds.CONFIRMATION, kinds.OUTPUT_REVIEW, kinds.ITERATION_REVIEW)


def takes_votes(rules: Approvers, kind: str) -> bool:
    """True when a pause of this kind, under these rules, is decided by several people's votes (N of M)."""
    return kind in VOTING_KINDS and rules.votes


@dataclass
class Tally:
    """The votes on one pause so far (user ids, in voting order) and what they add up to."""

    approvals: list[str] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    times: dict[str, float] = field(default_factory=dict)  # when each person voted

    def approved(self, rules: Approvers) -> bool:
        return len(self.approvals) >= rules.required

    def rejected(self, rules: Approvers) -> bool:
        return len(self.rejections) >= rules.reject_required

    def count(self, rules: Approvers) -> str:
        """`Approvals: 2 of 2` (and rejections, when several are needed or some were cast), without names."""
        text = f"Approvals: {len(self.approvals)} of {rules.required}"
        if self.rejections or rules.reject_required > 1:
            text += f" · Rejections: {len(self.rejections)} of {rules.reject_required}"
        return text

    def line(self, rules: Approvers) -> str:
        """`Approvals: 1 of 2 (<@U1>)` (and rejections, when several are needed or some were cast)."""
        text = f"Approvals: {len(self.approvals)} of {rules.required}"
        if self.approvals:
            text += f" ({_people(self.approvals)})"
        if self.rejections or rules.reject_required > 1:
            text += f" · Rejections: {len(self.rejections)} of {rules.reject_required}"
            if self.rejections:
                text += f" ({_people(self.rejections)})"
        return text


def _people(ids: list[str]) -> str:
    return ", ".join(f"<@{u}>" for u in ids)


_VOTES_ON = (
    sa.select(votes.c.requirement_id, votes.c.user_id, votes.c.approve, votes.c.note, votes.c.at)
    .where(votes.c.requirement_id == sa.bindparam("b_requirement_id"))
    .order_by(votes.c.at, votes.c.user_id)
)


def tally_in(tx: Tx, db: BaseDb, requirement_id: str) -> Tally:
    """The votes cast on a pause, read inside the caller's transaction (a vote's: after its lock on the
    pause, it sees every vote committed before it)."""
    result = Tally()
    for _, user, approve, note, at in tx.all(db.prepare(_VOTES_ON), {"b_requirement_id": requirement_id}):
        _count(result, user, approve, note, at)
    return result


def _votes_query(requirement_ids: list[str]) -> sa.Select[str, str, bool, str | None, float]:
    """The votes cast on these pauses, in voting order: (requirement id, user, approve, note, at)."""
    v = votes.c
    return (
        sa.select(v.requirement_id, v.user_id, v.approve, v.note, v.at)
        .where(v.requirement_id.in_(requirement_ids))
        .order_by(v.at, v.user_id)
    )


def _count(tally: Tally, user: str, approve: bool, note: str | None, at: float) -> None:
    (tally.approvals if approve else tally.rejections).append(user)
    tally.times[user] = at
    if note:
        tally.notes[user] = note


@dataclass
class Notes:
    """What was done to one pause so far: its hand-overs (to, by), in order, and when each was made
    (`handed_at`, in the same order); when it escalated (None: it has not); its votes."""

    handed: list[tuple[str, str]] = field(default_factory=list)
    escalated_at: float | None = None
    votes: Tally = field(default_factory=Tally)
    handed_at: list[float] = field(default_factory=list)

    def handed_to(self, user: str) -> bool:
        """True if the pause was handed to `user`."""
        return any(to == user for to, _by in self.handed)

    def handed_on_by(self, user: str) -> str | None:
        """Whom `user` handed this pause to (the first, if several), or None if they handed it to nobody."""
        return next((to for to, by in self.handed if by == user), None)

    def voted(self, user: str) -> bool:
        """True if `user` voted on this pause (read with votes)."""
        return user in self.votes.approvals or user in self.votes.rejections

    def text(self, rules: Approvers) -> str:
        """The lines a pause message shows about it ("" when nothing was done)."""
        lines = [self.votes.line(rules)] if rules.votes else []
        lines.extend(f":busts_in_silhouette: Handed to <@{to}> by <@{by}>" for to, by in self.handed)
        if self.escalated_at is not None and rules.escalate_to is not None:
            from bot.blocks import slack_time

            who = rules.escalate_to.mentions() or rules.escalate_to.describe()
            lines.append(
                f":arrow_double_up: Escalated to {who} at {slack_time(self.escalated_at)}: they may answer too"
            )
        return "\n".join(lines)

    def trail(self, rules: Approvers) -> list[str]:
        """What a decided message keeps of what was done to its pause, oldest first (mrkdwn lines): every
        vote with its voter, time and comment or reason, then the tally; each hand-over; the escalation."""
        from bot.blocks import slack_time
        from bot.blocks.text import quote

        timed: list[tuple[float, str]] = []
        for user in [*self.votes.approvals, *self.votes.rejections]:
            approved = user in self.votes.approvals
            at = self.votes.times.get(user, 0.0)
            line = f"{':white_check_mark:' if approved else ':no_entry_sign:'} <@{user}> "
            line += f"{'approved' if approved else 'rejected'} at {slack_time(at)}"
            if note := self.votes.notes.get(user):
                line += f": {quote(note, 300)}"
            timed.append((at, line))
        for (to, by), at in zip(self.handed, self.handed_at, strict=False):
            timed.append((at, f":busts_in_silhouette: Handed to <@{to}> by <@{by}> at {slack_time(at)}"))
        if self.escalated_at is not None and rules.escalate_to is not None:
            who = rules.escalate_to.mentions() or rules.escalate_to.describe()
            at = self.escalated_at
            timed.append((at, f":arrow_double_up: Escalated to {who} at {slack_time(at)}"))
        lines = [line for _at, line in sorted(timed, key=lambda t: t[0])]
        if rules.votes and (self.votes.approvals or self.votes.rejections):
            lines.append(self.votes.count(rules))
        return lines


async def read_notes(db: BaseDb, requirement_ids: list[str], *, with_votes: bool = True) -> dict[str, Notes]:
    """The notes of each of these pauses (every id gets one), read in one transaction: the Home shows a page
    of pauses at once, a pause message one. `with_votes=False` leaves the votes out (rules that count none)."""
    from bot.store.migrations import BOT

    wanted = list(dict.fromkeys(requirement_ids))
    h, e = handovers.c, escalations.c

    def read(conn: sa.Connection) -> dict[str, Notes]:
        notes = {requirement_id: Notes() for requirement_id in wanted}
        if not wanted:
            return notes
        handed = (
            sa.select(h.requirement_id, h.to_user, h.by_user, h.at).where(h.requirement_id.in_(wanted)).order_by(h.at)
        )
        for requirement_id, to, by, at in conn.execute(handed):
            notes[requirement_id].handed.append((to, by))
            notes[requirement_id].handed_at.append(at)
        for requirement_id, at in conn.execute(sa.select(e.requirement_id, e.at).where(e.requirement_id.in_(wanted))):
            notes[requirement_id].escalated_at = at
        if not with_votes:
            return notes
        for requirement_id, user, approve, note, at in conn.execute(_votes_query(wanted)):
            _count(notes[requirement_id].votes, user, approve, note, at)
        return notes

    return await db.run_transaction(read, write=False, tables=BOT)


async def pause_notes(db: BaseDb, rules: Approvers, requirement_id: str) -> str:
    """The lines a pause message shows about what happened to it so far ("" when nothing did)."""
    return (await read_notes(db, [requirement_id], with_votes=rules.votes))[requirement_id].text(rules)
