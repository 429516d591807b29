"""What pause messages and the Home show under "Who may answer" (`bot.store.pause_notes.read_notes`): the
hand-overs, escalation and votes of each pause asked for, and of no other, however many are asked for at once
(the statements are prepared per power of two of ids, padded, and pages past 64 ids are read 64 at a time).
SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.store.migrations import BOT
from bot.store.pause_notes import MAX_IDS, read_notes
from bot.store.tables import escalations, handovers, votes
from kern.db.base import BaseDb
from tests.conftest import unique


async def test_each_pause_gets_its_own_notes_however_many_are_read(db: BaseDb) -> None:
    ids = [unique("req") for _ in range(MAX_IDS + 6)]
    run = unique("run")

    def write(conn: Connection) -> None:
        for n, requirement_id in enumerate(ids):
            if n % 3 == 0:  # handed twice, in this order
                conn.execute(
                    sa.insert(handovers),
                    [
                        {"requirement_id": requirement_id, "run_id": run, "to_user": to, "by_user": by, "at": n + i}
                        for i, (to, by) in enumerate([("U2", "U1"), ("U3", "U2")])
                    ],
                )
            if n % 4 == 0:
                conn.execute(sa.insert(escalations).values(requirement_id=requirement_id, run_id=run, at=100.0 + n))
            if n % 2 == 0:  # an approval, then a rejection with a note
                conn.execute(
                    sa.insert(votes),
                    [
                        {
                            "requirement_id": requirement_id,
                            "user_id": "U4",
                            "run_id": run,
                            "approve": True,
                            "note": None,
                            "at": n,
                        },
                        {
                            "requirement_id": requirement_id,
                            "user_id": "U5",
                            "run_id": run,
                            "approve": False,
                            "note": f"no {n}",
                            "at": n + 0.5,
                        },
                    ],
                )

    await db.run_transaction(write, tables=BOT)
    try:
        for asked in (ids[:1], ids[1:4], ids[:MAX_IDS], ids, [*ids[5:8], ids[5], unique("nothing")]):
            notes = await read_notes(db, asked)
            assert set(notes) == set(asked)
            for requirement_id, note in notes.items():
                n = ids.index(requirement_id) if requirement_id in ids else -1
                if n < 0:  # a pause nothing happened to
                    assert not note.handed and note.escalated_at is None and not note.votes.approvals
                    continue
                assert note.handed == ([("U2", "U1"), ("U3", "U2")] if n % 3 == 0 else [])
                assert note.handed_at == ([n, n + 1] if n % 3 == 0 else [])
                assert note.escalated_at == (100.0 + n if n % 4 == 0 else None)
                assert note.votes.approvals == (["U4"] if n % 2 == 0 else [])
                assert note.votes.rejections == (["U5"] if n % 2 == 0 else [])
                assert note.votes.notes == ({"U5": f"no {n}"} if n % 2 == 0 else {})
        without_votes = await read_notes(db, ids[:2], with_votes=False)
        assert not without_votes[ids[0]].votes.approvals and without_votes[ids[0]].handed
        assert await read_notes(db, []) == {}
    finally:
        await db.close()
