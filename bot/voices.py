"""One voice per person on a pause decided by votes (N of M): a hand-over passes its giver's vote, it does
not add one. So the same person's vote and hand-over of one pause exclude each other, as do two hand-overs
by them. `Access` refuses these before anything is written; the transactions that record a vote
(`bot.ballots`) or a hand-over (`bot.handover`) check again, under a lock on the pause, for the clicks
that race.
"""

from __future__ import annotations

import sqlalchemy as sa

from bot.tables import handovers, pauses, votes
from kern.db.base import BaseDb
from kern.db.hot import Tx

# Another hand-over of this pause by the same person.
_HANDED_BY_ALSO = sa.select(handovers.c.to_user).where(
    handovers.c.requirement_id == sa.bindparam("b_requirement_id"),
    handovers.c.by_user == sa.bindparam("b_by_user"),
    handovers.c.to_user != sa.bindparam("b_to_user"),
)
_VOTED = sa.select(votes.c.user_id).where(
    votes.c.requirement_id == sa.bindparam("b_requirement_id"), votes.c.user_id == sa.bindparam("b_user_id")
)
_HANDED_BY = sa.select(handovers.c.to_user).where(
    handovers.c.requirement_id == sa.bindparam("b_requirement_id"), handovers.c.by_user == sa.bindparam("b_user_id")
)
# Votes and hand-overs of one pause take its message's row lock (PostgreSQL; SQLite has one writer): a
# vote and a hand-over committed at once then see each other.
_LOCK_PAUSE = (
    sa.select(pauses.c.requirement_id)
    .where(pauses.c.requirement_id == sa.bindparam("b_requirement_id"))
    .with_for_update()
)


VOTED = "You have voted on this pause: a hand-over would pass on a second vote. Your vote stands."


def vote_passed(to: str) -> str:
    return f"You handed this pause to <@{to}>: your vote is theirs now."


def handed_already(to: str) -> str:
    return f"You handed this pause to <@{to}> already: a hand-over passes your one vote."


class Refused(Exception):
    """A vote or hand-over its transaction found it may not record (nothing was written)."""


def check_vote(db: BaseDb, tx: Tx, requirement_id: str, user: str) -> None:
    """In a vote's transaction: refuse it if `user` handed this pause on (their vote went with it)."""
    tx.first(db.prepare(_LOCK_PAUSE), {"b_requirement_id": requirement_id})
    to = tx.first(db.prepare(_HANDED_BY), {"b_requirement_id": requirement_id, "b_user_id": user})
    if to is not None:
        raise Refused(vote_passed(to[0]))


def check_handover(db: BaseDb, tx: Tx, requirement_id: str, by: str, to: str) -> None:
    """In a hand-over's transaction on a pause decided by votes: refuse it if `by` voted or handed it
    to someone else (a hand-over passes one vote)."""
    tx.first(db.prepare(_LOCK_PAUSE), {"b_requirement_id": requirement_id})
    if tx.first(db.prepare(_VOTED), {"b_requirement_id": requirement_id, "b_user_id": by}) is not None:
        raise Refused(VOTED)
    key = {"b_requirement_id": requirement_id, "b_by_user": by, "b_to_user": to}
    if (earlier := tx.first(db.prepare(_HANDED_BY_ALSO), key)) is not None:
        raise Refused(handed_already(earlier[0]))
