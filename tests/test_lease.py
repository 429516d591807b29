"""A long step keeps its run's lease, whichever loop drives it.

A sync API call runs sync user code inline on its own loop (no thread hop), so the loop cannot fire a
heartbeat while the step runs: the lease is renewed from a thread. These tests watch the run from
another store object while a step outlasts its lease several times over: the run must never look
orphaned (which would let another process take it over mid-step).
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from kern.workflow import Parallel, Step, StepInput, Workflow
from tests.conftest import make_db, unique

LEASE = 0.6


def _watch(db_kind: str, tmp_path: Path, name: str, seen: list[list[str]], stop: threading.Event) -> threading.Thread:
    """Poll `orphaned_runs` (with a store of its own) until `stop`."""

    async def poll() -> None:
        observer = make_db(db_kind, tmp_path)
        try:
            while not stop.is_set():
                seen.append(await observer.orphaned_runs([name]))
                await asyncio.sleep(0.1)
        finally:
            await observer.close()

    thread = threading.Thread(target=lambda: asyncio.run(poll()))
    thread.start()
    return thread


def _slow(step_input: StepInput) -> str:
    time.sleep(LEASE * 3)
    return "slow done"


def _run_watched(db_kind: str, tmp_path: Path, workflow: Workflow, start: object) -> tuple[object, list[list[str]]]:
    seen: list[list[str]] = []
    stop = threading.Event()
    watcher = _watch(db_kind, tmp_path, workflow.name, seen, stop)
    try:
        out = start()  # type: ignore[operator]
    finally:
        stop.set()
        watcher.join(30)
    return out, seen


def test_long_sync_step_keeps_its_lease_on_the_sync_api(db_kind: str, tmp_path: Path) -> None:
    name = unique("lease-sync")
    wf = Workflow(name=name, db=make_db(db_kind, tmp_path, lease_seconds=LEASE), steps=[Step(name="s", executor=_slow)])
    out, seen = _run_watched(db_kind, tmp_path, wf, lambda: wf.run("x"))
    assert out.content == "slow done"  # type: ignore[attr-defined]
    assert len(seen) >= 10 and not any(seen), seen


def test_long_sync_step_keeps_its_lease_on_a_shared_loop(db_kind: str, tmp_path: Path) -> None:
    name = unique("lease-async")
    db = make_db(db_kind, tmp_path, lease_seconds=LEASE)
    wf = Workflow(name=name, db=db, steps=[Step(name="s", executor=_slow)])

    async def main() -> object:
        try:
            return await wf.arun("x")
        finally:
            await db.close()

    out, seen = _run_watched(db_kind, tmp_path, wf, lambda: asyncio.run(main()))
    assert out.content == "slow done"  # type: ignore[attr-defined]
    assert len(seen) >= 10 and not any(seen), seen


def test_parallel_sync_branches_still_run_concurrently_on_the_sync_api(tmp_path: Path) -> None:
    """Inline user code must not serialize a Parallel's branches: each still runs in its own thread."""
    threads: list[str] = []

    def branch(step_input: StepInput) -> str:
        threads.append(threading.current_thread().name)
        time.sleep(0.5)
        return "ok"

    wf = Workflow(
        name=unique("lease-par"),
        db=make_db("sqlite", tmp_path),
        steps=[Parallel(Step(name="a", executor=branch), Step(name="b", executor=branch), name="both")],
    )
    started = time.monotonic()
    wf.run("x")
    assert time.monotonic() - started < 0.9
    assert threading.current_thread().name not in threads
