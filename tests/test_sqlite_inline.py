"""SqliteDb runs an async caller's hot transactions inline on its event loop when they need not wait for
SQLite's lock, and in a thread when they would: the lock held by another process (then killed), the
loop's lag measured meanwhile."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

from kern.db.sqlite import SqliteDb
from kern.workflow import RunStatus, Step, Workflow
from tests.conftest import unique

# Another process that takes SQLite's write lock and keeps it until it is killed.
LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(120)
"""


def gated_workflow(db: SqliteDb, ran: list[str]) -> Workflow:
    def step(name: str) -> Step:
        def run(_: object) -> str:
            ran.append(name)
            return f"{name} done"

        return Step(name=name, executor=run, requires_confirmation=True)

    return Workflow(name=unique("inline"), db=db, steps=[step("first"), step("second")])


async def test_hot_transactions_of_an_async_caller_run_on_its_loop_thread(tmp_path: Path) -> None:
    db = SqliteDb(tmp_path / "kern.db")
    ran: list[str] = []
    paused = await gated_workflow(db, ran).arun("in")  # the tables exist, a run is stored
    assert paused.is_paused

    here = threading.current_thread()
    assert await db.run_hot(lambda tx: threading.current_thread()) is here
    assert await db.run_hot(lambda tx: threading.current_thread(), write=False) is here
    assert (await db.load_run(paused.run_id)).status == "PAUSED"
    await db.close()


async def test_a_resume_while_another_process_holds_the_lock_waits_in_a_thread_not_on_the_loop(
    tmp_path: Path,
) -> None:
    path = tmp_path / "kern.db"
    db = SqliteDb(path, busy_timeout=20)  # a wait on the loop itself would block it for 20 s
    ran: list[str] = []
    workflow = gated_workflow(db, ran)
    paused = await workflow.arun("in")
    paused.step_requirements[-1].confirm(by="U1")

    locker = await asyncio.create_subprocess_exec(sys.executable, "-c", LOCKER, str(path), stdout=subprocess.PIPE)
    try:
        assert locker.stdout is not None and await locker.stdout.readline() == b"locked\n"
        resume = asyncio.create_task(workflow.acontinue_run(paused))
        loop = asyncio.get_running_loop()
        lags: list[float] = []
        for _ in range(30):  # about 0.3 s with the lock held
            start = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - start - 0.01)
        assert not resume.done(), "the resume did not wait for the lock"
        # A reader does not wait for a writer (WAL): the run reads inline meanwhile, still paused.
        assert (await workflow.aget_run(paused.run_id)).status == RunStatus.PAUSED
    finally:
        locker.kill()  # the holder dies: SQLite releases its lock
        await locker.wait()

    out = await asyncio.wait_for(resume, 10)
    # Ticks of 10 ms; the bound leaves room for a loaded machine's stalls, far below the 20 s a wait costs.
    assert max(lags) < 5, f"the event loop was blocked for {max(lags):.3f} s"
    assert out.is_paused and out.step_requirements[-1].step_name == "second"
    assert ran == ["first"]  # resumed exactly once
    decisions = await db.audit_log(run_id=paused.run_id)
    assert [(d["step_name"], d["decision"], d["actor"]) for d in decisions] == [("first", "confirm", "U1")]
    await db.close()
