"""Background work of one bot process: tasks it owns, and click work deferred until a burst has passed."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, Protocol

log = logging.getLogger("kern_bot")
QUIET = 0.002  # seconds without a new click before deferred click work starts
MAX_DEFER = 0.25  # deferred click work starts after this long however busy the endpoint is

# Set while a Slack request is handled (bot/slack/server.py): work spawned for it runs only if the gate says this
# request was not acted on before (`bot.slack.dedupe`). Acks never wait for it; only the work does.
REQUEST_GATE: contextvars.ContextVar[Callable[[], Awaitable[bool]] | None] = contextvars.ContextVar(
    "kern_bot_request_gate", default=None
)


class JobContext(Protocol):
    """The acknowledged job (bot/runs/jobs.py) that work is being done for: the work names the run it acts on,
    so that the transaction applying it to that run also records the job done."""

    def working_on(self, run_id: str, user: str | None = None) -> None: ...

    def applied(self) -> bool:
        """Whether a transaction applying the job (its decision, its run's creation) has run."""
        ...


# Set while a job runs (bot/runs/jobs.py), for all the work it does; JOB_TASKS only for the job's own code, so
# that the job waits for the tasks that code spawns (not for what those spawn in turn: a run's follower).
CURRENT_JOB: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar("kern_bot_job", default=None)
JOB_TASKS: contextvars.ContextVar[list[asyncio.Task[Any]] | None] = contextvars.ContextVar(
    "kern_bot_job_tasks", default=None
)


class Background:
    """Spawned tasks (kept referenced, failures logged) and deferred click work."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self._deferred: deque[tuple[float, Callable[[], Coroutine[Any, Any, Any]]]] = deque()
        self._quiet_at = 0.0
        self._arriving = 0  # clicks being acknowledged right now (bot/slack/server.py): deferred work waits for them
        self._drainer: asyncio.Task[Any] | None = None

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run `coro` in the background, keeping a reference and logging its failure. Spawned while a
        request is handled, it runs only if that request is acted on for the first time (REQUEST_GATE)."""
        gate = REQUEST_GATE.get()
        job_tasks = JOB_TASKS.get()
        work = coro if gate is None else _gated(gate, coro)
        task = asyncio.ensure_future(work if job_tasks is None else _part_of_job(work))
        if job_tasks is not None:  # the job is done when this is (bot/runs/jobs.py)
            job_tasks.append(task)
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def spawn_apart(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """`spawn`, in a context of its own: the work carries no request's gate and no job of the caller's."""
        task = asyncio.get_running_loop().create_task(coro, context=contextvars.Context())
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())

    def defer(self, work: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Start `work()` in the background once clicks stop arriving (or after MAX_DEFER).

        Slack waits for a click's ack, not for its effect: while a burst of clicks is coming in, their
        acks go first and the resolutions they trigger start in a pause between requests. Without this,
        every ack in a burst of 200 waits behind the work of the clicks before it.
        """
        now = asyncio.get_running_loop().time()
        self._deferred.append((now, work))
        self._quiet_at = now + QUIET
        if self._drainer is None or self._drainer.done():
            # A context of its own: the drainer must not carry the gate of the request that started it.
            self._drainer = asyncio.get_running_loop().create_task(self._drain(), context=contextvars.Context())
            self.tasks.add(self._drainer)
            self._drainer.add_done_callback(self._done)

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """While a click is being acknowledged (its job written before its ack, bot/runs/jobs.py): it counts as
        arriving, so deferred work does not start and compete with its ack."""
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1
            self._quiet_at = max(self._quiet_at, asyncio.get_running_loop().time() + QUIET)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._deferred:
            queued_at, work = self._deferred[0]
            now = loop.time()
            if (now < self._quiet_at or self._arriving) and now - queued_at < MAX_DEFER:
                await asyncio.sleep(max(QUIET, min(self._quiet_at, queued_at + MAX_DEFER) - now))
                continue
            self._deferred.popleft()
            self.spawn(work())
            await asyncio.sleep(0)  # one start per loop pass, so requests arriving meanwhile are read first

    async def idle(self, within: float = 30.0) -> None:
        """Wait until no background work is left (tests and shutdown)."""
        deadline = time.monotonic() + within
        while self.tasks and time.monotonic() < deadline:  # the drainer is a task while work is deferred
            await asyncio.wait(list(self.tasks), timeout=max(0.0, deadline - time.monotonic()))

    async def cancel_all(self) -> None:
        """Stop what is still running (shutdown after `idle` gave up): runs are durable, so a cancelled
        follower loses nothing; another process takes the run over once its lease expires."""
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=5)


async def _part_of_job(coro: Coroutine[Any, Any, Any]) -> Any:
    JOB_TASKS.set(None)  # in this task's own context: what it spawns is not waited for by the job
    return await coro


async def _gated(gate: Callable[[], Awaitable[bool]], coro: Coroutine[Any, Any, Any]) -> Any:
    if await gate():
        return await coro
    coro.close()  # a repeat of a request already acted on: nothing of it runs
    return None
