"""What a bot process does every sweep, whatever else it is doing: nothing is left waiting on a process
that died or on a Slack call that failed.

- Deadlines: pauses past their deadline get their `on_timeout` applied, with nobody clicking. The sweep
  only applies them (the decision is durable at once); each run then goes on in the background, at most
  MOST_CONTINUING at a time, so a run that goes on into a slow step never delays another run's deadline.
  A run whose process dies meanwhile is taken over like any other (its lease expires).
- Recovery: runs whose process died (their lease expired) are taken over and followed here.
- Timers: reminders and escalations of open pauses that are due (bot/runs/timers.py).
- Approval records: tool-call pauses whose `@approval` records were resolved through kern's approvals API,
  not on Slack, are shown decided and their runs continued (bot/approvals/elsewhere.py, a `Runner.on_sweep` hook).
- The outbox: messages still owed to Slack (a failed call, a crash before sending) are delivered.
- Acknowledged jobs: clicks and starts whose process died, or whose attempt failed, are run again
  (bot/runs/jobs.py).

Each part is one indexed query when there is nothing to do, and safe with several bot processes on one
database: expiry and takeover are kern's compare-and-set claims, outbox rows are claimed before sending.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

import kern
from bot.logs import about
from bot.registry import Registry
from bot.runs.jobs import Jobs
from bot.runs.runner import Runner
from bot.runs.timers import Timers
from bot.slack.workspaces import acting_for
from bot.store.metrics import Metrics
from kern.exceptions import CorruptRunError, RunNotPausedError
from kern.run.workflow import WorkflowRunOutput

log = logging.getLogger("kern_bot")
OUTBOX_WAIT = 0.5  # seconds a sweep waits for its outbox delivery before going on (it goes on in the background)
MOST_CONTINUING = 32  # runs continued in the background after their deadline, at once, per process


async def take_over(runner: Runner, registry: Registry, run_id: str, metrics: Metrics | None = None) -> bool:
    """Continue a run whose process died, following it here; False if another process got it first."""
    about(run_id=run_id)
    try:
        stored = await registry.db.load_run(run_id)
        entry = registry.by_workflow_name(stored.workflow_name)
        if entry is None:
            return False
        card = await runner.store.card(run_id)
        if card is None:  # started outside the bot: finish it, nothing to show
            await entry.workflow.acontinue_run(run_id=run_id)
        else:
            events = entry.workflow.acontinue_run(run_id=run_id, stream=True, stream_events=True)
            with acting_for(card.team_id):  # what it says on Slack, it says with that workspace's token
                await runner.follow(entry, card, events, streaming=False)  # the answer replaces what streamed
    except CorruptRunError as exc:  # named in the log once and left out of later sweeps; the others go on
        registry.db.quarantine.hold(exc)
        return False
    except RunNotPausedError:
        return False
    if metrics is not None:
        metrics.takeovers.inc()
    log.info("took over run %s (its process had stopped)", run_id)
    return True


def _continuer(runner: Runner) -> kern.Spawn:
    """How a sweep continues a run whose deadline it applied: in the background, then delivering what the
    run owes Slack (its card) at once rather than at the next sweep."""

    def spawn(run: WorkflowRunOutput, rest: Coroutine[Any, Any, WorkflowRunOutput]) -> None:
        runner.continuing.add(run.run_id)

        async def go_on() -> None:
            try:
                about(run_id=run.run_id)
                await rest
            finally:
                runner.continuing.discard(run.run_id)
            await runner.outbox.deliver(run.run_id)

        runner.background.spawn(go_on())

    return spawn


async def sweep_once(
    runner: Runner,
    registry: Registry,
    now: float | None = None,
    metrics: Metrics | None = None,
    outbox_wait: float | None = None,
    jobs: Jobs | None = None,
) -> int:
    """One sweep; returns how many runs moved on by deadline plus how many orphans it began to take over
    (each takeover goes on in the background). `metrics` counts timeouts, takeovers and the sweep itself.
    The outbox's delivery is waited for at most `outbox_wait` seconds (None: to its end): a slow Slack
    delays no deadline of the next sweep."""
    started = time.monotonic()
    try:
        room = MOST_CONTINUING - len(runner.continuing)  # none left: the next sweeps apply what is due
        fired = (
            await kern.expire_due(registry.db, registry.workflows, now=now, limit=room, spawn=_continuer(runner))
            if room > 0
            else []
        )
        moved = len(fired)
        if metrics is not None and moved:
            metrics.decisions.labels("timeout").inc(moved)
        names = [w.name for w in registry.workflows]
        for run_id in await registry.db.orphaned_runs(names):  # leases expire by the real clock, as claims judge them
            runner.background.spawn(take_over(runner, registry, run_id, metrics))
            moved += 1
        await Timers(runner).fire_due(now)  # reminders and escalations
        for hook in runner.on_sweep:  # e.g. pauses whose `@approval` records were resolved elsewhere
            try:
                await hook()
            except Exception:  # its work waits for the next sweep; what Slack is owed goes on now
                log.exception("sweep: %s failed", getattr(hook, "__qualname__", hook))
        # What Slack is owed, delivered meanwhile: a slow Slack delays no deadline of the next sweep.
        delivery = runner.background.spawn(runner.outbox.deliver())
        if outbox_wait is None:
            await delivery
        else:
            await asyncio.wait({delivery}, timeout=outbox_wait)
    finally:
        if jobs is not None:  # even while the runs' table fails: a job that cannot be applied is told in time
            await jobs.sweep()
    if metrics is not None:
        metrics.swept(started)
    return moved


async def sweep_forever(
    runner: Runner,
    registry: Registry,
    interval: float = 1.0,
    metrics: Metrics | None = None,
    *,
    jobs: Jobs | None = None,
) -> None:
    """The background task: sweep every `interval` seconds until cancelled."""
    while True:
        try:
            await sweep_once(runner, registry, metrics=metrics, outbox_wait=OUTBOX_WAIT, jobs=jobs)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sweep failed")
        await asyncio.sleep(interval)
