"""SQLite's WAL checkpoints, moved off the commit path.

By default SQLite checkpoints the write-ahead log inside the commit that takes it past 1,000 pages: that
commit (and every writer queued behind it) waits while pages are copied into the database file, a stall
of several milliseconds every few hundred writes (the p99 of a busy store). Here a background thread runs
a PASSIVE checkpoint (it never blocks readers or writers) shortly after writes, so the log stays short,
and the automatic checkpoint is kept only as a backstop at a much larger size (`BACKSTOP_PAGES`), should
this thread fall behind. Durability is unchanged: a commit is durable in the log (`synchronous=NORMAL`,
as before) whether or not it has been checkpointed.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

log = logging.getLogger("kern.db")

BACKSTOP_PAGES = 20_000  # about 80 MB of log at 4 KiB pages before a commit checkpoints itself
INTERVAL = 0.25  # seconds between checks for new writes


class WalCheckpointer:
    """Checkpoints the log of one database file from a daemon thread of its own, started at the first
    write. `wrote()` is called after each committed write; `close()` stops the thread."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], interval: float = INTERVAL) -> None:
        self._connect = connect
        self._interval = interval
        self._writes = 0  # bumped by writers; a lost increment only delays a checkpoint by one interval
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.checkpoints = 0  # how many ran (for tests and operators)

    def wrote(self) -> None:
        self._writes += 1
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, name="kern-sqlite-checkpoint", daemon=True)
                    self._thread.start()

    def _loop(self) -> None:
        conn = self._connect()
        seen = 0
        try:
            while not self._stop.wait(self._interval):
                if self._writes == seen:
                    continue
                seen = self._writes
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    self.checkpoints += 1
                except sqlite3.Error as exc:  # busy or locked by another process: the next round tries again
                    log.debug("WAL checkpoint skipped: %s", exc)
        finally:
            conn.close()

    def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(5)
            self._stop = threading.Event()
