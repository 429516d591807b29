"""What people did to one pause so far: its votes (N of M), hand-overs and escalation, as values. Read from
the bot's tables by `bot.store.pause_notes` (and `bot.store.votes`); checked on by `bot.approvals`; drawn
under "Who may answer" and kept in a decided message's trail. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.policy import Approvers


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
