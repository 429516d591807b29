"""Workflows shared by tests and the subprocesses they start (which rebuild them by name)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from kern.db.base import BaseDb
from kern.db.postgres import PostgresDb
from kern.db.sqlite import SqliteDb
from kern.workflow import Step, StepInput, Workflow


def open_db(target: str, lease_seconds: float = 30.0) -> BaseDb:
    if target.startswith("postgresql://"):
        return PostgresDb(db_url=target, lease_seconds=lease_seconds)
    return SqliteDb(db_file=target, lease_seconds=lease_seconds)


def logging_step(name: str, log: Path, *, sleep_if: Path | None = None, **kwargs: object) -> Step:
    """A step that appends its name to `log`; with `sleep_if`, it announces itself there and hangs."""

    def run(step_input: StepInput) -> str:
        with log.open("a") as f:
            f.write(f"start {name}\n")
        if sleep_if is not None and not sleep_if.exists():
            sleep_if.write_text(str(os.getpid()))
            time.sleep(600)  # killed here
        with log.open("a") as f:
            f.write(f"done {name}\n")
        return f"{name}<{step_input.previous_step_content}>"

    return Step(name=name, executor=run, **kwargs)  # type: ignore[arg-type]


def chain(name: str, db: BaseDb, log: Path, *, hang_marker: Path | None = None, gate: bool = False) -> Workflow:
    """a -> b (hangs once if hang_marker is given) -> c; with gate, b waits for a confirmation."""
    return Workflow(
        name=name,
        db=db,
        steps=[
            logging_step("a", log),
            logging_step("b", log, sleep_if=hang_marker, requires_confirmation=gate),
            logging_step("c", log),
        ],
    )


if __name__ == "__main__":
    # python -m tests.flows <action> <db> <workflow name> <log> [run_id | hang marker]
    action, target, name, log_path = sys.argv[1:5]
    extra = sys.argv[5] if len(sys.argv) > 5 else None
    log = Path(log_path)
    if action == "run-and-hang":
        wf = chain(name, open_db(target, lease_seconds=1), log, hang_marker=Path(extra or ""))
        wf.run("x")
    elif action == "continue":
        wf = chain(name, open_db(target, lease_seconds=1), log)
        out = wf.continue_run(run_id=extra)
        print(out.status.value, out.content)
    elif action == "confirm-and-continue":
        wf = chain(name, open_db(target), log, gate=True)
        run = wf.get_run(extra or "")
        run.step_requirements[-1].confirm(by="subprocess")
        out = wf.continue_run(run)
        print(out.status.value, out.content)
    elif action == "pause":
        wf = chain(name, open_db(target), log, gate=True)
        print(wf.run("x").run_id)
