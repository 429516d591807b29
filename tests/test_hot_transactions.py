"""Watchers and `run_hot`: statements prepared once (`BaseDb.prepare`) and run on the bare driver
connection, inside kern's own transactions. What a watcher writes commits or rolls back with the run's
change, and is written once even when the answer to its COMMIT is lost."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

from bot.slack.dedupe import SeenRequests
from kern.db.base import BaseDb, RunChange
from kern.db.hot import Tx, dumps, insert_statement
from kern.db.postgres import PostgresDb
from kern.exceptions import RunNotFoundError
from kern.run.base import RunStatus
from kern.workflow import Step, Workflow
from tests.conftest import PG_URL, require_postgres, unique
from tests.test_db_faults import PgProxy, counting_step, proxy  # noqa: F401 - `proxy` is a fixture


class Changes:
    """A watcher keeping its own table of every status change, in kern's transaction."""

    def __init__(self, db: BaseDb, fail_on: str | None = None) -> None:
        self.db = db
        self.fail_on = fail_on
        self.table = sa.Table(
            unique("kern_test_changes").replace("-", "_"),
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("run_id", sa.String(64), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("detail", sa.JSON),
        )
        self.insert = insert_statement(self.table, "run_id", "status", "detail")
        self.select = (
            sa.select(self.table.c.status, self.table.c.detail)
            .where(self.table.c.run_id == sa.bindparam("b_run_id"))
            .order_by(self.table.c.id)
        )
        db.watch(self.record)

    def record(self, tx: Tx, change: RunChange) -> None:
        detail = {"decisions": [r.decision.get("action") for r in change.resolutions]}
        tx.execute(
            self.db.prepare(self.insert), {"run_id": change.run_id, "status": change.status, "detail": dumps(detail)}
        )
        if change.status == self.fail_on:
            raise RuntimeError("the watcher failed after writing")

    async def of(self, run_id: str) -> list[tuple[str, Any]]:
        rows = await self.db.run_hot(
            lambda tx: tx.all(self.db.prepare(self.select), {"b_run_id": run_id}),
            write=False,
            tables=self.table.metadata,
        )
        return [(status, self.db.read_json(detail)) for status, detail in rows]


async def test_watcher_rows_commit_with_every_status_change(db: BaseDb) -> None:
    changes = Changes(db)
    await changes.of("none")  # its table exists
    counts: Counter[tuple[str, str]] = Counter()
    workflow = Workflow(name=unique("watched"), db=db, steps=[counting_step("a", counts, requires_confirmation=True)])
    paused = await workflow.arun("x")
    paused.step_requirements[-1].confirm(by="tester")
    done = await workflow.acontinue_run(paused)
    assert done.status == RunStatus.COMPLETED
    none: dict[str, list[Any]] = {"decisions": []}
    assert await changes.of(done.run_id) == [
        ("PAUSED", none),  # the first save is the pause itself (a confirmation before the step runs)
        ("RUNNING", {"decisions": ["confirm"]}),  # the claim, with its decision
        ("COMPLETED", none),
    ]
    await db.close()


async def test_a_failing_watcher_rolls_the_change_back(db: BaseDb) -> None:
    changes = Changes(db, fail_on="PAUSED")
    await changes.of("none")
    run_id = unique("run")
    output = {"run_id": run_id, "session_id": unique("s"), "workflow_name": "w", "status": "PAUSED"}
    with pytest.raises(RuntimeError, match="watcher failed"):
        await db.save_run(output, {}, version=0, new_requirement={"requirement_id": "r1"})
    with pytest.raises(RunNotFoundError):
        await db.load_run(run_id)
    assert await changes.of(run_id) == []  # its row, written before it raised, went with the rollback
    await db.close()


@pytest.mark.parametrize("lost", ["pause", "claim"])
async def test_lost_commit_answer_leaves_one_watcher_row(proxy: PgProxy, lost: str) -> None:  # noqa: F811
    db = PostgresDb(proxy.url, pool_size=2)  # type: ignore[attr-defined]
    changes = Changes(db)
    await changes.of("none")
    counts: Counter[tuple[str, str]] = Counter()
    workflow = Workflow(name=unique("watched"), db=db, steps=[counting_step("a", counts, requires_confirmation=True)])
    proxy.lose_commit_in = 1 if lost == "pause" else 0
    paused = await workflow.arun("x")
    proxy.lose_commit_in = 1 if lost == "claim" else 0
    paused.step_requirements[-1].confirm(by="tester")
    done = await workflow.acontinue_run(paused)
    assert proxy.lost == 1
    assert done.status == RunStatus.COMPLETED
    assert [status for status, _ in await changes.of(done.run_id)] == ["PAUSED", "RUNNING", "COMPLETED"]
    assert counts[(done.run_id, "a")] == 1
    await db.close()


async def test_lost_commit_answer_of_a_first_request_still_counts_as_first(proxy: PgProxy) -> None:  # noqa: F811
    """bot.slack.dedupe's insert, retried after its COMMIT's answer was lost, recognises its own row: the
    request is acted on (once), and a real repeat is still refused."""
    db = PostgresDb(proxy.url, pool_size=2)  # type: ignore[attr-defined]
    seen = SeenRequests(db)
    assert await seen.first(unique("warm"))  # tables ready: the next COMMIT is the request's
    key = unique("request")
    proxy.lose_commit_in = 1
    assert await seen.first(key)
    assert proxy.lost == 1
    assert not await seen.first(key)
    await db.close()


async def test_overflow_connections_are_closed_when_returned(caplog: pytest.LogCaptureFixture) -> None:
    """A hot transaction on an overflow connection returns it to a full pool, which closes it: that close
    is IO, so it must run where SQLAlchemy can await (else it fails, and the connection is left open)."""
    require_postgres()
    app = unique("overflow")
    db = PostgresDb(PG_URL, pool_size=1, max_overflow=3, application_name=app)
    nap = db.prepare(sa.select(sa.func.pg_sleep(0.2)))
    with caplog.at_level(logging.ERROR):
        await asyncio.gather(*(db.run_hot(lambda tx: tx.first(nap, {}), write=False) for _ in range(4)))
    assert not [r for r in caplog.records if "closing connection" in r.getMessage()]
    count = db.prepare(
        sa.select(sa.func.count()).select_from(sa.text("pg_stat_activity")).where(sa.text("application_name = :app"))
    )
    (open_now,) = await db.run_hot(lambda tx: tx.first(count, {"app": app}), write=False)
    assert open_now == 1  # the pool's one connection; the three overflow ones were closed
    await db.close()


async def test_load_runs_reads_many_runs_at_once(db: BaseDb) -> None:
    """`load_runs`: the stored runs with these ids, by id, as `load_run` reads each; unknown ids are left
    out and a repeated id is read once."""
    step = Step(name="gate", executor=lambda s: "done", requires_confirmation=True)
    workflow = Workflow(name=unique("many"), db=db, steps=[step])
    paused = [await workflow.arun("x") for _ in range(3)]
    paused[0].step_requirements[-1].confirm()
    done = await workflow.acontinue_run(paused[0])
    ids = [r.run_id for r in paused]
    found = await db.load_runs([*ids, "no-such-run", ids[1]])
    assert sorted(found) == sorted(ids)
    for run_id in ids:
        one = await db.load_run(run_id)
        assert (found[run_id].status, found[run_id].version, found[run_id].output) == (
            one.status,
            one.version,
            one.output,
        )
    assert found[done.run_id].status == RunStatus.COMPLETED.value and found[ids[1]].status == RunStatus.PAUSED.value
    assert await db.load_runs([]) == {}
    with pytest.raises(RunNotFoundError):
        await db.load_run("no-such-run")


async def test_written_is_the_last_state_this_process_saved_and_none_after_a_claim(db: BaseDb) -> None:
    """`written(run_id)`: what this process saved last for the run, as `load_run` reads it back: after a
    pause, and after a resume's drive; None once a claim here (a cancel) has moved the run on, and for a
    run this store never wrote."""
    step = Step(name="gate", executor=lambda s: "done", requires_confirmation=True)
    again_step = Step(name="again", executor=lambda s: "again", requires_confirmation=True)
    workflow = Workflow(name=unique("written"), db=db, steps=[step, again_step])
    assert db.written("no-such-run") is None

    async def same_as_stored(run_id: str) -> None:
        mine, stored = db.written(run_id), await db.load_run(run_id)
        assert mine is not None
        assert (mine.status, mine.version, mine.output, mine.journal) == (
            stored.status,
            stored.version,
            stored.output,
            stored.journal,
        )
        saved = workflow.saved_here(run_id)  # the same, as a run output
        assert saved is not None and saved.to_dict() == (await workflow.aget_run(run_id)).to_dict()

    paused = await workflow.arun("x")
    await same_as_stored(paused.run_id)
    paused.step_requirements[-1].confirm()
    again = await workflow.acontinue_run(paused)
    assert again.is_paused
    await same_as_stored(paused.run_id)
    await workflow.acancel_run(paused.run_id, by="U1")
    assert db.written(paused.run_id) is None and workflow.saved_here(paused.run_id) is None
    assert (await db.load_run(paused.run_id)).status == RunStatus.CANCELLED.value
