"""Deadlines: apply `on_timeout` to pauses nobody answered in time, from any host."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from kern.db.base import BaseDb
from kern.exceptions import CorruptRunError, JournalMismatchError, RequirementNotResolvedError, RunNotPausedError
from kern.run.workflow import WorkflowRunOutput

if TYPE_CHECKING:
    from kern.workflow.workflow import Workflow

log = logging.getLogger(__name__)
# Takes a run whose deadline was applied, and the coroutine that drives the rest of it (see `expire_due`).
Spawn = Callable[[WorkflowRunOutput, Coroutine[Any, Any, WorkflowRunOutput]], object]


async def expire_due(
    db: BaseDb,
    workflows: Iterable[Workflow] | Mapping[str, Workflow],
    *,
    now: float | None = None,
    limit: int = 100,
    spawn: Spawn | None = None,
) -> list[WorkflowRunOutput]:
    """Apply `on_timeout` to every pending pause of `workflows` whose deadline has passed.

    Cheap when nothing is due (one indexed query), safe to call from several processes at once: each
    expiry is a compare-and-set claim, so exactly one caller applies it and the rest skip. A decision
    made before the deadline always wins, because resolving a pause moves the run past it. A run that
    cannot be read (`CorruptRunError`) is skipped, named in the log once and quarantined, and the others
    are served. Returns the runs this call moved on.

    `spawn` continues each run off this call: here the deadline is applied (the decision recorded, the
    run RUNNING under this process's lease), and `spawn(run, coroutine)` is handed the rest of the run to
    drive, say as a task, so that a run that goes on into a slow step does not hold back the next deadline.
    If this process dies before that ends, nothing is lost: the lease expires and `recover_orphans` (in
    any process) takes the run over. The runs are then returned as taken (RUNNING).
    """
    items = workflows.values() if isinstance(workflows, Mapping) else workflows
    by_name = {w.name: w for w in items}
    if not by_name:
        return []
    moved: list[WorkflowRunOutput] = []
    for run_id, requirement_id in await db.due_requirements(list(by_name), now=now, limit=limit):
        try:
            stored = await db.load_run(run_id)
            workflow = by_name.get(stored.workflow_name or "")
            if workflow is None or stored.status != "PAUSED":
                continue
            result, rest = await workflow._expire(run_id, requirement_id, now=now)
            if spawn is not None:
                spawn(result, rest)
            else:
                result = await rest
        except CorruptRunError as exc:  # named in the log once, left out of the next sweeps; the others go on
            db.quarantine.hold(exc)
            continue
        except RunNotPausedError:
            continue  # another process (or a person) got there first
        except RequirementNotResolvedError:
            continue  # not due by this host's clock after all; a later sweep takes it
        except JournalMismatchError as exc:
            log.warning("Not expiring run %s: %s", run_id, exc)  # left paused for a host with its definition
            continue
        moved.append(result)
    return moved


async def recover_orphans(
    db: BaseDb,
    workflows: Iterable[Workflow] | Mapping[str, Workflow],
    *,
    now: float | None = None,
    limit: int = 100,
) -> list[WorkflowRunOutput]:
    """Take over and finish (to their end or next pause) runs whose process died mid-step.

    A running run holds a lease its process renews; once it has expired, this continues the run from its
    journal (the step that was in flight runs again; completed steps do not). Cheap when there are none
    (one indexed query), and safe from several processes: the takeover is a compare-and-set claim.
    """
    items = workflows.values() if isinstance(workflows, Mapping) else workflows
    by_name = {w.name: w for w in items}
    if not by_name:
        return []
    recovered: list[WorkflowRunOutput] = []
    for run_id in await db.orphaned_runs(list(by_name), now=now, limit=limit):
        try:
            stored = await db.load_run(run_id)
            workflow = by_name.get(stored.workflow_name or "")
            if workflow is None:
                continue
            recovered.append(await workflow.acontinue_run(run_id=run_id))
        except CorruptRunError as exc:
            db.quarantine.hold(exc)
        except RunNotPausedError:
            continue  # another process took it over first
    return recovered
