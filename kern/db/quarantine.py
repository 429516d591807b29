"""Runs this process found unreadable (`CorruptRunError`): named in the log once, and left out of the
sweeps' queries for a while, so that a few bad rows past their deadline never fill every sweep's batch
and hold back the deadlines and takeovers of the other runs.

Nothing is written to the row: it stays as stored for someone to repair or delete. After `hold_for`
seconds it is read again (a repaired row is then served as any other); a problem already logged is not
logged again.
"""

from __future__ import annotations

import logging
import time

from kern.exceptions import CorruptRunError

log = logging.getLogger("kern.db")

_MOST_LOGGED = 10_000  # problems remembered as logged; past that, a problem may be logged once more


class Quarantine:
    """The unreadable runs of one store, as this process met them."""

    def __init__(self, hold_for: float = 600.0) -> None:
        self.hold_for = hold_for
        self._until: dict[str, float] = {}
        self._logged: set[tuple[str, str]] = set()

    def hold(self, error: CorruptRunError) -> None:
        """Leave `error.run_id` out of sweeps for `hold_for` seconds; log the problem the first time."""
        self._until[error.run_id] = time.monotonic() + self.hold_for
        key = (error.run_id, error.problem)
        if key not in self._logged:
            if len(self._logged) >= _MOST_LOGGED:
                self._logged.clear()
            self._logged.add(key)
            log.error("quarantined run %s: %s", error.run_id, error)

    def held(self) -> list[str]:
        """The ids currently left out of sweeps."""
        if not self._until:
            return []
        now = time.monotonic()
        for run_id in [r for r, until in self._until.items() if until <= now]:
            del self._until[run_id]
        return list(self._until)
