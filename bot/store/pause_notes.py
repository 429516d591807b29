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
from kern.db.hot import Tx

MAX_IDS = 64  # pauses read by one statement (more are read 64 at a time)
# Per number of ids (a power of two; a shorter list is padded with its last id): the hand-overs, escalations
# and votes of those pauses. Built once each and prepared by the store (`BaseDb.prepare`): a pause message is
# drawn on every click, so its notes are read as kern's hot operations are, inline where SQLite allows.
_BY_SIZE: dict[int, tuple[sa.ClauseElement, sa.ClauseElement, sa.ClauseElement]] = {}


def _statements(size: int) -> tuple[sa.ClauseElement, sa.ClauseElement, sa.ClauseElement]:
    if size not in _BY_SIZE:
        ids = [sa.bindparam(f"id{i}", type_=sa.String) for i in range(size)]
        h, e = handovers.c, escalations.c
        _BY_SIZE[size] = (
            sa.select(h.requirement_id, h.to_user, h.by_user, h.at).where(h.requirement_id.in_(ids)).order_by(h.at),
            sa.select(e.requirement_id, e.at).where(e.requirement_id.in_(ids)),
            votes_query(ids),
        )
    return _BY_SIZE[size]


async def read_notes(db: BaseDb, requirement_ids: list[str], *, with_votes: bool = True) -> dict[str, Notes]:
    """The notes of each of these pauses (every id gets one), read in one transaction: the Home shows a page
    of pauses at once, a pause message one. `with_votes=False` leaves the votes out (rules that count none)."""
    from bot.store.migrations import BOT

    wanted = list(dict.fromkeys(requirement_ids))
    chunks = [wanted[i : i + MAX_IDS] for i in range(0, len(wanted), MAX_IDS)]

    def read(tx: Tx) -> dict[str, Notes]:
        notes = {requirement_id: Notes() for requirement_id in wanted}
        for chunk in chunks:
            size = 1 << (len(chunk) - 1).bit_length()
            params = {f"id{i}": chunk[min(i, len(chunk) - 1)] for i in range(size)}
            handed, escalated, voted = (db.prepare(statement) for statement in _statements(size))
            for requirement_id, to, by, at in tx.all(handed, params):
                notes[requirement_id].handed.append((to, by))
                notes[requirement_id].handed_at.append(at)
            for requirement_id, at in tx.all(escalated, params):
                notes[requirement_id].escalated_at = at
            if with_votes:
                for requirement_id, user, approve, note, at in tx.all(voted, params):
                    count_vote(notes[requirement_id].votes, user, approve, note, at)
        return notes

    if not wanted:
        return {}
    return await db.run_hot(read, write=False, tables=BOT)


async def pause_notes(db: BaseDb, rules: Approvers, requirement_id: str) -> str:
    """The lines a pause message shows about what happened to it so far ("" when nothing did)."""
    return (await read_notes(db, [requirement_id], with_votes=rules.votes))[requirement_id].text(rules)
