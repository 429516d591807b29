"""The votes on pauses (N of M), read in the caller's transaction or with other notes: the one query and the
one way of counting them (`bot.pause_history.Tally`)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from bot.pause_history import Tally
from bot.store.tables import votes
from kern.db.base import BaseDb
from kern.db.hot import Tx


def tally_in(tx: Tx, db: BaseDb, requirement_id: str) -> Tally:
    """The votes cast on a pause, read inside the caller's transaction (a vote's: after its lock on the
    pause, it sees every vote committed before it)."""
    result = Tally()
    for _, user, approve, note, at in tx.all(db.prepare(_VOTES_ON), {"b_requirement_id": requirement_id}):
        count_vote(result, user, approve, note, at)
    return result


def votes_query(requirement_ids: Sequence[str | sa.BindParameter[str]]) -> sa.Select[str, str, bool, str | None, float]:
    """The votes cast on these pauses (ids, or parameters standing for them), in voting order: (requirement id,
    user, approve, note, at)."""
    v = votes.c
    return (
        sa.select(v.requirement_id, v.user_id, v.approve, v.note, v.at)
        .where(v.requirement_id.in_(requirement_ids))
        .order_by(v.at, v.user_id)
    )


# The votes on one pause (`tally_in`), prepared once.
_VOTES_ON = votes_query([sa.bindparam("b_requirement_id", type_=sa.String)])


def count_vote(tally: Tally, user: str, approve: bool, note: str | None, at: float) -> None:
    """Add one vote, as read, to `tally`."""
    (tally.approvals if approve else tally.rejections).append(user)
    tally.times[user] = at
    if note:
        tally.notes[user] = note
