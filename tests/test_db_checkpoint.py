"""SQLite's WAL checkpoints run on a background thread, not inside a commit (the p99 of a busy store):
the log's pages reach the database file without any writer checkpointing, and the thread stops with
the store."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

from kern.db.sqlite import SqliteDb
from kern.workflow import Step, Workflow
from tests.conftest import unique


def checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "kern-sqlite-checkpoint"]


def test_the_log_is_checkpointed_off_the_commit_path(tmp_path: Path) -> None:
    before = len(checkpoint_threads())
    db = SqliteDb(db_file=tmp_path / "kern.db")
    wf = Workflow(name=unique("ckpt"), db=db, steps=[Step(name="s", executor=lambda s: "x" * 4000)])
    file = tmp_path / "kern.db"
    wf.run("warm up")
    size_after_first = os.path.getsize(file)
    for i in range(150):  # ~ a thousand pages of log, below the backstop: no commit checkpoints itself
        wf.run(f"run {i}")
    assert len(checkpoint_threads()) == before + 1  # started by the first write
    checkpointer = db._checkpointer
    assert checkpointer is not None
    deadline = time.monotonic() + 10
    # Only a checkpoint writes pages into the file; the count moves once the checkpoint has returned.
    while os.path.getsize(file) <= size_after_first or checkpointer.checkpoints < 1:
        assert time.monotonic() < deadline, "no checkpoint moved the log into the database file"
        time.sleep(0.05)
    asyncio.run(db.close())


async def test_the_thread_stops_with_the_store_and_memory_stores_have_none(tmp_path: Path) -> None:
    before = len(checkpoint_threads())
    db = SqliteDb(db_file=tmp_path / "kern.db")
    wf = Workflow(name=unique("ckpt"), db=db, steps=[Step(name="s", executor=lambda s: "done")])
    await wf.arun("x")
    assert len(checkpoint_threads()) == before + 1
    await db.close()
    assert len(checkpoint_threads()) == before
    memory = SqliteDb()
    await Workflow(name=unique("mem"), db=memory, steps=[Step(name="s", executor=lambda s: "done")]).arun("x")
    assert memory._checkpointer is None and len(checkpoint_threads()) == before
    await memory.close()
