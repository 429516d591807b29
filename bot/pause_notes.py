"""What a pause message shows under "Who may answer" once people act on it: the votes so far (N of M),
hand-overs, an escalation. Read from the bot's tables whenever the message is drawn again, so every copy
(thread, DMs, approvals channel) shows the same."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from bot.policy import Approvers
from bot.tables import escalations, handovers, votes
from kern.db.base import BaseDb


@dataclass
class Tally:
    """The votes on one pause so far (user ids, in voting order) and what they add up to."""

    approvals: list[str] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)

    def approved(self, rules: Approvers) -> bool:
        return len(self.approvals) >= rules.required

    def rejected(self, rules: Approvers) -> bool:
        return len(self.rejections) >= rules.reject_required

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


async def tally(db: BaseDb, requirement_id: str) -> Tally:
    """The votes cast on a pause."""
    from bot.migrations import BOT

    query = (
        sa.select(votes.c.user_id, votes.c.approve, votes.c.note)
        .where(votes.c.requirement_id == requirement_id)
        .order_by(votes.c.at, votes.c.user_id)
    )
    rows = await db.run_transaction(lambda conn: conn.execute(query).all(), write=False, tables=BOT)
    result = Tally()
    for user, approve, note in rows:
        (result.approvals if approve else result.rejections).append(user)
        if note:
            result.notes[user] = note
    return result


async def handed_to(db: BaseDb, requirement_id: str, user: str) -> bool:
    """True if the pause was handed to `user`."""
    from bot.migrations import BOT

    c = handovers.c
    query = sa.select(c.to_user).where(c.requirement_id == requirement_id, c.to_user == user)
    return await db.run_transaction(lambda conn: conn.execute(query).first(), write=False, tables=BOT) is not None


async def escalated(db: BaseDb, requirement_id: str) -> bool:
    from bot.migrations import BOT

    query = sa.select(escalations.c.at).where(escalations.c.requirement_id == requirement_id)
    return await db.run_transaction(lambda conn: conn.execute(query).first(), write=False, tables=BOT) is not None


async def pause_notes(db: BaseDb, rules: Approvers, requirement_id: str) -> str:
    """The lines a pause message shows about what happened to it so far ("" when nothing did)."""
    from bot.migrations import BOT

    def read(conn: sa.Connection) -> tuple[list[tuple[str, str]], float | None]:
        c = handovers.c
        handed = conn.execute(
            sa.select(c.to_user, c.by_user).where(c.requirement_id == requirement_id).order_by(c.at)
        ).all()
        up = conn.execute(sa.select(escalations.c.at).where(escalations.c.requirement_id == requirement_id)).scalar()
        return [tuple(r) for r in handed], up

    handed, escalated_at = await db.run_transaction(read, write=False, tables=BOT)
    lines = []
    if rules.votes:
        lines.append((await tally(db, requirement_id)).line(rules))
    lines.extend(f":busts_in_silhouette: Handed to <@{to}> by <@{by}>" for to, by in handed)
    if escalated_at is not None and rules.escalate_to is not None:
        from bot.blocks import slack_time

        who = rules.escalate_to.mentions() or rules.escalate_to.describe()
        lines.append(f":arrow_double_up: Escalated to {who} at {slack_time(escalated_at)}: they may answer too")
    return "\n".join(lines)
