"""Run status shared by workflow and agent runs."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """Where a run stands. `PAUSED` runs wait for a person; the last three are final."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    ERROR = "ERROR"

    # The documented lower-case names: aliases of the members above (same values), so
    # `RunStatus.completed is RunStatus.COMPLETED` and iteration still lists each status once.
    pending = "PENDING"
    running = "RUNNING"
    paused = "PAUSED"
    completed = "COMPLETED"
    cancelled = "CANCELLED"
    error = "ERROR"

    # Accept lower-case spellings from callers and older rows.
    @classmethod
    def _missing_(cls, value: object) -> RunStatus | None:
        if isinstance(value, str):
            return cls.__members__.get(value.upper())
        return None

    @property
    def is_final(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.CANCELLED, RunStatus.ERROR)
