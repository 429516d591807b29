"""Errors raised by kern's public API."""

from __future__ import annotations


class KernError(Exception):
    """Base class of every error kern raises on purpose."""


class RunNotFoundError(KernError, LookupError):
    """No run with that id exists in the database."""


class RunNotPausedError(KernError):
    """The run is not waiting for a person, so it cannot be continued."""

    def __init__(self, message: str, *, run_id: str | None = None, status: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.status = status


class RunAlreadyResumedError(RunNotPausedError):
    """Another caller resumed this pause first; nothing was changed by this call."""

    def __init__(
        self,
        message: str,
        *,
        run_id: str | None = None,
        status: str | None = None,
        resolved_by: str | None = None,
    ) -> None:
        super().__init__(message, run_id=run_id, status=status)
        self.resolved_by = resolved_by


class RequirementNotResolvedError(KernError, ValueError):
    """`continue_run` was called while the active requirement is still unresolved."""


class LostOwnershipError(KernError):
    """Another process took the run over (its lease had expired); this process stops writing to it."""


class RunCancelledWhileRunningError(LostOwnershipError):
    """The run was cancelled while this process ran a step of it; the process stops, and what its steps
    did after the cancel (`steps`, by name) is recorded on the cancelled run: their results in its
    journal and one audit entry each (decision `finished_after_cancel`)."""

    def __init__(
        self,
        message: str,
        *,
        run_id: str,
        cancelled_by: str | None = None,
        cancelled_at: float | None = None,
        steps: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.cancelled_by = cancelled_by
        self.cancelled_at = cancelled_at
        self.steps = steps


class JournalMismatchError(KernError):
    """The workflow changed since this run was journaled: the step at `path` is not the one that produced
    the journal's entries there. Nothing was changed; the run can be continued with the definition it
    was started under (or cancelled)."""

    def __init__(
        self, message: str, *, run_id: str | None = None, path: str = "", recorded: str = "", found: str | None = None
    ) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.path = path
        self.recorded = recorded
        self.found = found


class SchemaVersionError(KernError):
    """The database's tables are at a schema revision this code will not use as is.

    `found` is the revision in the database (None: tables not made by kern), `expected` the newest one
    this code knows. The message is one line saying what to do: upgrade the database (it is older) or
    upgrade kern (a newer kern wrote it).
    """

    def __init__(self, message: str, *, component: str, found: str | None, expected: str) -> None:
        super().__init__(message)
        self.component = component
        self.found = found
        self.expected = expected


class StoreError(KernError):
    """The database failed an operation. The message is short and safe to show to people (never SQL
    or parameters); `error_id` finds the full exception in the `kern.db` log."""

    def __init__(self, message: str, *, error_id: str) -> None:
        super().__init__(message)
        self.error_id = error_id


class StoreUnavailableError(StoreError):
    """The database stayed unreachable (or locked) for the store's whole `retry_for`; nothing was lost.

    A run that meets it is left as it was last stored (RUNNING with its lease, or PAUSED), never ERROR:
    this process, or another one after the lease expires, continues it when the database is back.
    """
