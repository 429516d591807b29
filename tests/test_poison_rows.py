"""One unreadable run never stops the others (issue 24, item 23): a run whose stored JSON is cut off, holds a
status or a pause kind this kern does not know, lost its `step_requirements`, has a journal that is a list,
or a number Python cannot read back. Reading it raises one error, `CorruptRunError`, naming the run and
what is wrong; nothing is changed; deadline and recovery sweeps skip it (logged once) and serve every
other run. The bot's side (App Home, `/kern status`, takeovers) is in tests/test_bot_poison.py."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

import kern
from kern import CorruptRunError, KernError
from kern._sync import run_sync
from kern.db.base import BaseDb
from kern.workflow import RunStatus, Step, Workflow
from tests import corrupt
from tests.conftest import unique

LATER = 3600.0


def flow(db: BaseDb, ran: list[str], name: str | None = None) -> Workflow:
    review = Step(
        name="review",
        executor=lambda s: ran.append(str(s.input)) or "reviewed",
        requires_confirmation=True,
        hitl_timeout=60,
        on_timeout="approve",
    )
    return Workflow(name=name or unique("poison"), db=db, steps=[Step(name="fetch", executor=lambda s: "f"), review])


def raw(db: BaseDb, run_id: str) -> tuple[Any, ...]:
    """The row as stored, read around the store's checks (so it can be compared while it is unreadable)."""
    import sqlalchemy as sa

    from kern.db import schema

    c = schema.runs.c
    query = sa.select(c.status, c.version, c.deadline, sa.cast(c.output, sa.Text), sa.cast(c.journal, sa.Text))
    return run_sync(db.run_transaction(lambda conn: tuple(conn.execute(query.where(c.run_id == run_id)).one())))


@pytest.mark.parametrize("damage", list(corrupt.DAMAGES))
def test_one_corrupt_run_past_its_deadline_does_not_stop_the_others(
    db: BaseDb, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []
    wf = flow(db, ran)
    bad, good = wf.run("bad"), wf.run("good")
    damage_it, problem = corrupt.DAMAGES[damage]
    damage_it(db, bad.run_id)
    before = raw(db, bad.run_id)

    with pytest.raises(CorruptRunError, match=problem) as info:
        wf.get_run(bad.run_id)
    err = info.value
    assert isinstance(err, KernError) and err.run_id == bad.run_id and bad.run_id in str(err)
    assert not isinstance(err.__cause__, CorruptRunError)  # one error type, whatever broke
    with pytest.raises(CorruptRunError, match=problem):
        wf.get_session()  # the session holds both runs
    bad.step_requirements[-1].confirm(by="alice")
    for refused in (
        lambda: wf.continue_run(run_id=bad.run_id, step_requirements=bad.step_requirements),
        lambda: wf.cancel_run(bad.run_id, by="alice"),
    ):
        with pytest.raises(CorruptRunError, match=problem):
            refused()
    assert raw(db, bad.run_id) == before and ran == []  # nothing changed, nothing ran

    # the bad run's deadline is the sooner one: the sweep meets it first, skips it, and fires the other
    with caplog.at_level(logging.ERROR, logger="kern.db"):
        moved = asyncio_run(kern.expire_due(db, [wf], now=time.time() + LATER))
        assert [m.run_id for m in moved] == [good.run_id] and ran == ["good"]
        assert wf.get_run(good.run_id).status == RunStatus.COMPLETED
        assert asyncio_run(kern.expire_due(db, [wf], now=time.time() + LATER)) == []  # skipped, not retried
        assert asyncio_run(kern.recover_orphans(db, [wf])) == []
    named = [r for r in caplog.records if bad.run_id in r.getMessage()]
    assert len(named) == 1 and "quarantined" in named[0].getMessage()  # logged once, named
    assert raw(db, bad.run_id) == before
    assert bad.run_id in db.quarantine.held()
    assert run_sync(db.due_requirements([wf.name], now=time.time() + LATER)) == []
    # a view of many runs still gets the others (the store leaves out what it cannot decode at all)
    assert good.run_id in run_sync(db.load_runs([bad.run_id, good.run_id]))


def asyncio_run(coro: Any) -> Any:
    return run_sync(coro)


def test_a_corrupt_orphan_does_not_stop_another_takeover(db: BaseDb) -> None:
    ran: list[str] = []
    wf = flow(db, ran)
    bad, good = wf.run("bad"), wf.run("good")
    for run in (bad, good):  # as if their process died mid-drive: RUNNING, lease expired
        corrupt.set_columns(db, run.run_id, status="RUNNING", lease_until=0.0, deadline=None)
        corrupt.edit_output(db, run.run_id, lambda o: o.update(status="RUNNING"))
    corrupt.set_columns(db, bad.run_id, journal=["cut"])
    before = raw(db, bad.run_id)
    recovered = run_sync(kern.recover_orphans(db, [wf]))
    assert [r.run_id for r in recovered] == [good.run_id] and recovered[0].is_paused  # taken over, paused again
    assert raw(db, bad.run_id) == before and bad.run_id in db.quarantine.held()


def test_quarantined_runs_do_not_fill_a_sweeps_batch(db: BaseDb) -> None:
    """Three unreadable runs due before the good one, two per sweep: without the quarantine every sweep
    would meet the same bad runs first and the good one's deadline would never fire."""
    ran: list[str] = []
    wf = flow(db, ran)
    bad = [wf.run(f"bad{i}") for i in range(3)]
    good = wf.run("good")
    for run in bad:
        corrupt.edit_output(db, run.run_id, lambda o: o.update(status="ARCHIVED"))
    for _ in range(3):
        run_sync(kern.expire_due(db, [wf], now=time.time() + LATER, limit=2))
    assert ran == ["good"] and wf.get_run(good.run_id).status == RunStatus.COMPLETED
    assert set(db.quarantine.held()) == {r.run_id for r in bad}


def test_a_repaired_run_is_served_again(db: BaseDb) -> None:
    ran: list[str] = []
    wf = flow(db, ran)
    run = wf.run("x")
    corrupt.edit_output(db, run.run_id, lambda o: o.update(status="ARCHIVED"))
    db.quarantine.hold_for = 0.3
    assert run_sync(kern.expire_due(db, [wf], now=time.time() + LATER)) == []
    corrupt.edit_output(db, run.run_id, lambda o: o.update(status="PAUSED"))  # someone repairs the row
    assert run_sync(kern.expire_due(db, [wf], now=time.time() + LATER)) == []  # still held
    time.sleep(0.35)
    run_sync(kern.expire_due(db, [wf], now=time.time() + LATER))  # the hold has passed: read again
    assert wf.get_run(run.run_id).status == RunStatus.COMPLETED and ran == ["x"]
