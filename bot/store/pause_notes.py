"""What a pause message shows under "Who may answer" once people act on it: the votes so far (N of M),
hand-overs, an escalation. Read from the bot's tables whenever the message is drawn again, so every copy
(thread, DMs, approvals channel) shows the same."""

from __future__ import annotations

import sqlalchemy as sa

from bot.pause_history import Notes
from bot.policy import Approvers
from bot.store.tables import escalations, handovers
from bot.store.votes import count_vote, votes_query
from kern.db.base import BaseDb


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
        for requirement_id, user, approve, note, at in conn.execute(votes_query(wanted)):
            count_vote(notes[requirement_id].votes, user, approve, note, at)
        return notes

    return await db.run_transaction(read, write=False, tables=BOT)


async def pause_notes(db: BaseDb, rules: Approvers, requirement_id: str) -> str:
    """The lines a pause message shows about what happened to it so far ("" when nothing did)."""
    return (await read_notes(db, [requirement_id], with_votes=rules.votes))[requirement_id].text(rules)
