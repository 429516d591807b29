"""A run cancelled while one of its steps runs: what the step did is recorded, and the drive is told why.

A cancel takes a running run at once (`Workflow.acancel_run`); the process driving it learns of it at its
next write, whose compare-and-set fails. By then the step in flight has finished and done its side
effects. Instead of dropping its result, the drive adds what it finished after the cancel to the
cancelled run (each node's result in the journal, one audit entry per node naming it) and stops with
`RunCancelledWhileRunningError`, which says who cancelled, when, and which step was running.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from kern.db.base import BaseDb, Resolution, StoredRun
from kern.exceptions import RunCancelledWhileRunningError
from kern.workflow.journal import NODES

CANCELLED = "CANCELLED"
FINISHED_AFTER_CANCEL = "finished_after_cancel"  # the audit entry's decision


async def record_after_cancel(db: BaseDb, run_id: str, journal: dict[str, Any]) -> None:
    """The drive's write of `journal` was refused: if the run was cancelled meanwhile, add to it what the
    drive journaled since its last write and raise `RunCancelledWhileRunningError`; return (the caller
    re-raises its `LostOwnershipError`) if the run was taken over instead."""
    finished: list[tuple[str, str]] = []  # (path, step name) of each node that finished after the cancel

    def amend(stored: StoredRun) -> tuple[dict[str, Any], list[Resolution]] | None:
        if stored.status != CANCELLED:
            return None
        nodes = journal.get(NODES) or {}
        late = {k: v for k, v in journal.items() if k != NODES and k not in stored.journal}
        finished[:] = [
            (path, str(value.get("step_name") or path))
            for path, value in late.items()
            if path in nodes and isinstance(value, dict)
        ]
        if not late:
            return None
        merged = {**late, **stored.journal, NODES: {**nodes, **(stored.journal.get(NODES) or {})}}
        at = time.time()
        audit = [
            Resolution(
                requirement_id="",
                status=FINISHED_AFTER_CANCEL,
                resolved_by=None,
                resolved_at=at,
                decision={"action": FINISHED_AFTER_CANCEL, "path": path},
                step_name=name,
                kind="step",
                note=f"Step '{name}' finished after the run was cancelled; its result is in the journal at {path}.",
            )
            for path, name in finished
        ]
        return merged, audit

    before = await db.amend_ended(run_id, amend)
    if before is None:
        stored = await db.load_run(run_id)
        if stored.status != CANCELLED:
            return  # taken over by another process, not cancelled
    by, at = await _the_cancel(db, run_id)
    raise RunCancelledWhileRunningError(
        _message(run_id, by, at, [name for _, name in finished]),
        run_id=run_id,
        cancelled_by=by,
        cancelled_at=at,
        steps=tuple(dict.fromkeys(name for _, name in finished)),
    )


async def _the_cancel(db: BaseDb, run_id: str) -> tuple[str | None, float | None]:
    """Who cancelled the run and when, from its audit log (the last `cancel` entry)."""
    cancels = [e for e in await db.audit_log(run_id=run_id) if e.get("decision") == "cancel"]
    return (cancels[-1].get("actor"), cancels[-1].get("at")) if cancels else (None, None)


def _message(run_id: str, by: str | None, at: float | None, steps: list[str]) -> str:
    names = list(dict.fromkeys(steps))
    when = f" at {datetime.fromtimestamp(at, UTC):%Y-%m-%d %H:%M:%S} UTC" if at else ""
    head = f"Run {run_id} was cancelled" + (f" by {by}" if by else "") + when
    if not names:
        return f"{head} while it was running; this process stops."
    shown = ", ".join(f"'{n}'" for n in names)
    step = "step" if len(names) == 1 else "steps"
    return (
        f"{head} while {step} {shown} {'was' if len(names) == 1 else 'were'} running; "
        f"{'it' if len(names) == 1 else 'they'} finished after the cancel, and the result is recorded in the "
        "run's journal and audit log. Nothing after it runs."
    )
