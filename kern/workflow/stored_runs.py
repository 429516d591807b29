"""Reading a workflow's stored runs and sessions (`Workflow` inherits these)."""

from __future__ import annotations

from kern._sync import run_sync
from kern.db.base import BaseDb, StoredRun
from kern.exceptions import RunNotFoundError
from kern.run.workflow import WorkflowRunOutput, WorkflowSession


class StoredRuns:
    """The read side of a `Workflow`: its runs and sessions as stored, by id, from any process."""

    name: str
    db: BaseDb
    session_id: str

    async def aget_run(self, run_id: str) -> WorkflowRunOutput:
        """The stored run (with its version, ready for `continue_run`)."""
        return _run_of(await self.db.load_run(run_id))

    def saved_here(self, run_id: str) -> WorkflowRunOutput | None:
        """The run as this process last saved it, as `aget_run` would read it then, without a read; None if
        the store no longer holds it or a claim here moved it on (see `BaseDb.written`). Another process
        may have written the run since."""
        stored = self.db.written(run_id)
        return _run_of(stored) if stored is not None else None

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
        """The session (default: this workflow's) with its runs, oldest first."""
        sid = session_id or self.session_id
        rows = await self.db.session_runs(sid)
        runs = [WorkflowRunOutput.from_dict(output, version) for output, version in rows]
        row = await self.db.get_session_row(sid)
        return WorkflowSession(
            session_id=sid,
            workflow_name=(row or {}).get("workflow_name", self.name),
            user_id=(row or {}).get("user_id"),
            session_state=runs[-1].session_state if runs else None,
            runs=runs,
        )

    def get_session(self, session_id: str | None = None) -> WorkflowSession:
        return run_sync(self.aget_session(session_id))


def _run_of(stored: StoredRun) -> WorkflowRunOutput:
    return WorkflowRunOutput.from_dict(stored.output, stored.version)
