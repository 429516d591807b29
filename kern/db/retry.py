"""Retrying the store's transactions while the database fails transiently (a dropped connection, a
failover, SQLite busy), for a bounded time; see `Retries._retry` and, for why it is safe for writes that
are not idempotent, `BaseDb._tx`."""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from kern.exceptions import StoreError, StoreUnavailableError

T = TypeVar("T")
log = logging.getLogger("kern.db")

# Backoff between attempts of one operation: the first retry is immediate (a dropped connection was
# replaced by a fresh one), then 20 ms doubling up to 1 s, each wait with jitter (50-100 %).
_FIRST_DELAY = 0.02
_MAX_DELAY = 1.0


class CommitUnknownError(Exception):
    """Raised by a dialect's `_run` when the connection failed while COMMIT was in flight: the
    transaction may or may not have committed. Internal; the retry handles it."""


class Attempt:
    """What a transaction body may ask about the attempt it runs in (see `BaseDb.run_transaction`).

    `commit_unknown` turns True (and stays True) once an earlier attempt of the same operation failed
    while its COMMIT was in flight: that attempt's writes may be in the database, and a body that is
    not idempotent must recognise them instead of writing again.
    """

    __slots__ = ("commit_unknown", "number")

    def __init__(self) -> None:
        self.number = 1
        self.commit_unknown = False


def _brief(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200] if lines else ''}"


class Retries:
    """The retry half of a store (`BaseDb` mixes it in): which failures are transient, how long to keep
    trying, and what people are shown when the database stays away (an id, never SQL)."""

    retry_for: float
    driver_errors: tuple[type[BaseException], ...] = ()
    _tables_ready: bool

    if TYPE_CHECKING:  # provided by the store that mixes this in (`BaseDb`)

        async def _ensure_tables(self) -> None: ...
        async def _run(self, body: Callable[[Any], T], *, write: bool) -> T: ...
        async def _run_raw(self, body: Callable[[Any], T], *, write: bool) -> T: ...

    async def _retry(
        self, failure: Exception, body: Callable[[Any], T], write: bool, attempt: Attempt | None, raw: bool = False
    ) -> T:
        started = time.monotonic()
        deadline = started + self.retry_for
        attempt = attempt or Attempt()
        delay = 0.0
        log.warning("Database operation failed (%s); retrying for up to %g s", _brief(failure), self.retry_for)
        while True:
            attempt.commit_unknown = attempt.commit_unknown or isinstance(failure, CommitUnknownError)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await asyncio.sleep(min(delay * random.uniform(0.5, 1.0), remaining))  # the last attempt at the deadline
            delay = min(max(delay * 2, _FIRST_DELAY), _MAX_DELAY)
            attempt.number += 1
            try:
                if not self._tables_ready:
                    await self._ensure_tables()
                result = await (self._run_raw(body, write=write) if raw else self._run(body, write=write))
            except Exception as exc:
                if self._transient(exc):
                    failure = exc
                    continue
                if self._is_db_error(exc):
                    raise self._store_error(exc) from exc
                raise
            log.info("Database operation succeeded on attempt %d", attempt.number)
            return result
        error_id = secrets.token_hex(4)
        log.error(
            "Database unavailable for %.1f s (%d attempts); giving up [error %s]",
            time.monotonic() - started,
            attempt.number,
            error_id,
            exc_info=failure,
        )
        raise StoreUnavailableError(
            f"The database is unavailable (error {error_id}); try again later.",
            error_id=error_id,
        ) from failure

    def _is_db_error(self, exc: Exception) -> bool:
        """An error of the database (its text may hold SQL and parameters), not one the body raised."""
        return isinstance(exc, (sa.exc.DBAPIError, *self.driver_errors))

    @staticmethod
    def _store_error(exc: Exception) -> StoreError:
        """A database error as a `StoreError` people may see (no SQL), logged with its id."""
        error_id = secrets.token_hex(4)
        log.error("Database error [error %s]", error_id, exc_info=exc)
        return StoreError(f"The database failed (error {error_id}).", error_id=error_id)

    def _transient(self, exc: BaseException) -> bool:
        """Whether `exc` (or an error it wraps) is one that a later attempt may not meet."""
        seen: set[int] = set()
        todo: list[BaseException | None] = [exc]
        while todo:
            err = todo.pop()
            if err is None or id(err) in seen:
                continue
            seen.add(id(err))
            if isinstance(err, CommitUnknownError) or self._transient_error(err):
                return True
            if isinstance(err, sa.exc.DBAPIError):
                if err.connection_invalidated:
                    return True
                todo.append(err.orig)
            todo += [err.__cause__, err.__context__]
        return False

    def _transient_error(self, err: BaseException) -> bool:
        """Dialect hook: whether this one error (not what it wraps) is transient."""
        return False
