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
from kern.workflow.lease import LeaseKeeper
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
    spans: list[tuple[float, float]] = []

    def branch(step_input: StepInput) -> str:
        threads.append(threading.current_thread().name)
        began = time.monotonic()
        time.sleep(0.5)
        spans.append((began, time.monotonic()))
        return "ok"

    wf = Workflow(
        name=unique("lease-par"),
        db=make_db("sqlite", tmp_path),
        steps=[Parallel(Step(name="a", executor=branch), Step(name="b", executor=branch), name="both")],
    )
    wf.run("x")
    # Overlapping sleeps prove concurrency without a wall-clock bound that a loaded CI machine can miss:
    # run one after the other, the later branch would start only after the earlier one ended.
    assert len(spans) == 2
    assert max(start for start, _ in spans) < min(end for _, end in spans), spans
    assert threading.current_thread().name not in threads
    assert len(set(threads)) == 2, threads


class _CountingCondition(threading.Condition):
    """A condition that counts how often the keeper thread is woken."""

    def __init__(self) -> None:
        super().__init__(threading.Lock())
        self.wakeups = 0

    def notify(self, n: int = 1) -> None:
        self.wakeups += 1
        super().notify(n)


def test_short_drives_do_not_wake_the_lease_keeper_after_it_went_idle() -> None:
    """A run of drives that end before their first renewal must not each wake the keeper thread, also
    after the keeper has once woken and found none registered (the state of every long-running worker)."""
    keeper = LeaseKeeper()
    keeper._cond = condition = _CountingCondition()  # the keeper's wake-ups, counted
    renewed: list[float] = []

    async def renew() -> None:
        renewed.append(time.monotonic())

    keeper.remove(keeper.add(renew, 0.05))  # starts the keeper, which wakes at 0.05 s and finds none
    time.sleep(0.3)
    for _ in range(20):
        keeper.remove(keeper.add(renew, 0.05))
    assert condition.wakeups == 0
    assert renewed == []

    lease = keeper.add(renew, 0.05)  # a drive that lasts: renewed on time all the same
    deadline = time.monotonic() + 5
    while len(renewed) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    keeper.remove(lease)
    assert len(renewed) >= 2
