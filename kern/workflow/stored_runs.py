"""Reading a workflow's stored runs and sessions (`Workflow` inherits these).

A stored run is read in one place, `read_run`, which refuses what it cannot read as a run with one error,
`CorruptRunError` (naming the run and what is wrong), whatever the damage: a status or a pause kind this
kern does not know (a newer kern wrote it), a paused run without its pauses, a field of the wrong type.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from kern._sync import run_sync
from kern.db.base import BaseDb, StoredRun
from kern.exceptions import CorruptRunError, RunNotFoundError
from kern.run.base import RunStatus
from kern.run.requirement import KINDS, StepRequirement
from kern.run.workflow import WorkflowRunOutput, WorkflowSession

_STATUSES = frozenset(status.value for status in RunStatus)


class StoredRuns:
    """The read side of a `Workflow`: its runs and sessions as stored, by id, from any process."""

    name: str
    id: str
    db: BaseDb
    session_id: str

    async def aget_run(self, run_id: str) -> WorkflowRunOutput:
        """The stored run (with its version, ready for `continue_run`). Raises `RunNotFoundError`, or
        `CorruptRunError` for a run that cannot be read."""
        return read_run(await self.db.load_run(run_id))

    def saved_here(self, run_id: str) -> WorkflowRunOutput | None:
        """The run as this process last saved it, as `aget_run` would read it then, without a read; None if
        the store no longer holds it or a claim here moved it on (see `BaseDb.written`). Another process
        may have written the run since."""
        stored = self.db.written(run_id)
        return read_run(stored) if stored is not None else None

    def get_run(self, run_id: str) -> WorkflowRunOutput:
        return run_sync(self.aget_run(run_id))

    async def aget_run_output(self, run_id: str, session_id: str | None = None) -> WorkflowRunOutput | None:
        """The stored run, or None if there is none with that id (in that session, when given)."""
        try:
            run = await self.aget_run(run_id)
        except RunNotFoundError:
            return None
        if session_id is not None and run.session_id != session_id:
            return None
        return run

    def get_run_output(self, run_id: str, session_id: str | None = None) -> WorkflowRunOutput | None:
        return run_sync(self.aget_run_output(run_id, session_id=session_id))

    async def aget_last_run_output(self, session_id: str | None = None) -> WorkflowRunOutput | None:
        """The newest run of the session (default: this workflow's), or None if it has none."""
        runs = (await self.aget_session(session_id)).runs
        return runs[-1] if runs else None

    def get_last_run_output(self, session_id: str | None = None) -> WorkflowRunOutput | None:
        return run_sync(self.aget_last_run_output(session_id))

    async def aget_session(self, session_id: str | None = None) -> WorkflowSession:
        """The session (default: this workflow's) with its runs, oldest first (`CorruptRunError` if one of
        them cannot be read)."""
        sid = session_id or self.session_id
        runs = [read_run(stored) for stored in await self.db.session_runs(sid)]
        row = await self.db.get_session_row(sid)
        return WorkflowSession(
            session_id=sid,
            workflow_name=(row or {}).get("workflow_name", self.name),
            user_id=(row or {}).get("user_id"),
            session_state=runs[-1].session_state if runs else None,
            runs=runs,
            workflow_id=self.id,
            created_at=(row or {}).get("created_at"),
            updated_at=runs[-1].updated_at if runs else None,
        )

    def get_session(self, session_id: str | None = None) -> WorkflowSession:
        return run_sync(self.aget_session(session_id))


def read_run(stored: StoredRun) -> WorkflowRunOutput:
    """The stored run as a `WorkflowRunOutput`, or `CorruptRunError` saying what in it cannot be read."""
    problem = _problem(stored)
    if problem is None:
        try:
            return WorkflowRunOutput.from_dict(stored.output, stored.version)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            problem = _unfit(exc)
    raise CorruptRunError(stored.run_id, problem)


def read_pause(run_id: str, data: Any) -> StepRequirement:
    """One stored requirement (a run's active pause, read alone), or `CorruptRunError`."""
    problem = _pause_problem(data)
    if problem is None:
        try:
            return StepRequirement.from_dict(data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            problem = _unfit(exc)
    raise CorruptRunError(run_id, problem)


def _problem(stored: StoredRun) -> str | None:
    """What this kern cannot act on in a stored run, checked before it is read into objects (the store
    has already checked that its output and journal are JSON objects)."""
    output = stored.output
    for status in (stored.status, output.get("status")):
        if status not in _STATUSES:
            return f"its status {status!r} is not one this kern knows (written by a newer kern?)"
    history = output.get("step_requirements")
    if history is not None and not isinstance(history, list):
        return "its step_requirements are not a list"
    if output.get("status") == RunStatus.PAUSED.value and not history:
        return "it is PAUSED but has no step_requirements (the pause it waits at is missing)"
    for data in history or []:
        problem = _pause_problem(data)
        if problem is not None:
            return problem
    return None


def _pause_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return "one of its step_requirements is not a JSON object"
    kind = data.get("kind")
    if kind is not None and kind not in KINDS:  # no kind: the reference API's form, read from its flags
        return (
            f"its pause at step {str(data.get('step_name'))[:100]!r} is of kind {str(kind)[:100]!r}, "
            "which this kern does not know (written by a newer kern?)"
        )
    return None


def _unfit(exc: Exception) -> str:
    """Why a run's JSON does not fit its classes, without the stored values (they may be anyone's)."""
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the run"
        return f"{where[:100]} does not fit ({first['msg'][:200]})"
    return f"its output does not fit a workflow run ({type(exc).__name__})"
