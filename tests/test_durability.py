"""Restarts and races, with real processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kern import RunAlreadyResumedError, RunNotPausedError
from kern.db.base import BaseDb
from kern.workflow import RunStatus, Step, StepInput, Workflow
from tests.conftest import PG_URL, make_db, unique
from tests.flows import chain

ROOT = Path(__file__).resolve().parent.parent


def target(db_kind: str, tmp_path: Path) -> str:
    return str(tmp_path / "kern.db") if db_kind == "sqlite" else PG_URL


def flows(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.flows", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )


def test_resume_in_another_process(db_kind: str, tmp_path: Path) -> None:
    db = make_db(db_kind, tmp_path)
    name, log = unique("xproc"), tmp_path / "log.txt"
    paused = chain(name, db, log, gate=True).run("x")
    assert paused.is_paused
    result = flows("confirm-and-continue", target(db_kind, tmp_path), name, str(log), paused.run_id)
    assert result.stdout.strip() == "COMPLETED c<b<a<None>>>"
    assert chain(name, db, log).get_run(paused.run_id).status == RunStatus.COMPLETED
    # and the other way round: paused by a process that has exited, continued here
    run_id = flows("pause", target(db_kind, tmp_path), name, str(log)).stdout.strip()
    other = chain(name, make_db(db_kind, tmp_path), log, gate=True)
    run = other.get_run(run_id)
    run.step_requirements[-1].confirm()
    assert other.continue_run(run).status == RunStatus.COMPLETED


def test_sigkill_mid_run_loses_no_completed_step(db_kind: str, tmp_path: Path) -> None:
    make_db(db_kind, tmp_path)  # skips (or fails in CI) when PostgreSQL is unreachable
    name, log, marker = unique("kill"), tmp_path / "log.txt", tmp_path / "hanging"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.flows", "run-and-hang", target(db_kind, tmp_path), name, str(log), str(marker)],
        cwd=ROOT,
    )
    try:
        deadline = time.time() + 30
        while not marker.exists():
            assert time.time() < deadline, "the subprocess never reached step b"
            assert proc.poll() is None, "the subprocess died early"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    run_id = _only_run_id(db_kind, tmp_path, name)
    time.sleep(1.2)  # the dead process's lease (1 s) runs out
    result = flows("continue", target(db_kind, tmp_path), name, str(log), run_id)
    assert result.stdout.strip() == "COMPLETED c<b<a<None>>>"
    assert log.read_text().splitlines() == ["start a", "done a", "start b", "start b", "done b", "start c", "done c"]


def _only_run_id(db_kind: str, tmp_path: Path, name: str) -> str:
    db = make_db(db_kind, tmp_path)

    async def find() -> str:
        import sqlalchemy as sa

        from kern.db import schema

        rows = await db.run_transaction(
            lambda c: c.execute(sa.select(schema.runs.c.run_id).where(schema.runs.c.workflow_name == name)).all(),
            write=False,
        )
        assert len(rows) == 1
        return rows[0][0]

    return asyncio.run(find())


def _racer_workflow(db: BaseDb, name: str, counter: list[str]) -> Workflow:
    def act(step_input: StepInput) -> str:
        counter.append("ran")
        return "done"

    return Workflow(name=name, db=db, steps=[Step(name="act", executor=act, requires_confirmation=True)])


async def test_twenty_concurrent_tasks_one_winner(db: BaseDb) -> None:
    counter: list[str] = []
    wf = _racer_workflow(db, unique("race"), counter)
    paused = await wf.arun("x")
    copies = [await wf.aget_run(paused.run_id) for _ in range(20)]
    for copy in copies:
        copy.step_requirements[-1].confirm()
    results = await asyncio.gather(*(wf.acontinue_run(c) for c in copies), return_exceptions=True)
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1 and winners[0].status == RunStatus.COMPLETED
    assert all(isinstance(e, RunNotPausedError) for e in losers), losers
    assert counter == ["ran"]
    assert len(await db.audit_log(run_id=paused.run_id)) == 1


def test_twenty_threads_one_winner(db: BaseDb) -> None:
    counter: list[str] = []
    wf = _racer_workflow(db, unique("race"), counter)
    paused = wf.run("x")
    paused.step_requirements[-1].confirm()
    barrier = threading.Barrier(20)
    outcomes: list[object] = []

    def racer() -> None:
        barrier.wait()
        try:
            outcomes.append(wf.continue_run(paused))
        except RunNotPausedError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=racer) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(1 for o in outcomes if not isinstance(o, Exception)) == 1
    assert sum(1 for o in outcomes if isinstance(o, RunAlreadyResumedError)) == 19
    assert counter == ["ran"]


RACER = """
import sys, time
from pathlib import Path
from kern import RunNotPausedError
from tests.flows import chain, open_db
target, name, log, run_id, go = sys.argv[1:6]
wf = chain(name, open_db(target), Path(log), gate=True)
run = wf.get_run(run_id)
run.step_requirements[-1].confirm(by=f"pid{__import__('os').getpid()}")
Path(go + "." + str(__import__('os').getpid())).write_text("ready")
while not Path(go).exists():
    time.sleep(0.005)
try:
    print("WON", wf.continue_run(run).status.value)
except RunNotPausedError as exc:
    print("LOST", type(exc).__name__)
"""


def test_processes_race_one_winner(db_kind: str, tmp_path: Path) -> None:
    db = make_db(db_kind, tmp_path)
    name, log, go = unique("prace"), tmp_path / "log.txt", tmp_path / "go"
    paused = chain(name, db, log, gate=True).run("x")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, target(db_kind, tmp_path), name, str(log), paused.run_id, str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    deadline = time.time() + 60
    while len(list(tmp_path.glob("go.*"))) < len(procs):  # every racer has loaded the run
        assert time.time() < deadline, "racers did not get ready"
        time.sleep(0.02)
    go.write_text("go")
    outputs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(o.split()[0] for o in outputs) == ["LOST"] * 7 + ["WON"], outputs
    assert log.read_text().count("done b") == 1


@pytest.fixture(autouse=True)
def _pythonpath(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
