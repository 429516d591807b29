"""Deadlines fire without any click: apply `on_timeout` to pauses past their deadline, then show it.

Safe with several bot processes on one database: kern's expiry is a compare-and-set, so exactly one
process moves each run on, and only that process updates Slack for it.
"""

from __future__ import annotations

import asyncio
import logging
import time

import kern
from bot import blocks as ui
from bot.runner import Runner
from kern.workflow.types import OnTimeout

log = logging.getLogger("kern_bot")


async def sweep_once(runner: Runner, now: float | None = None) -> int:
    """Expire what is due; returns how many runs moved on."""
    moved = await kern.expire_due(runner.registry.db, runner.registry.workflows, now=now)
    for run in moved:
        card = await runner.store.card(run.run_id)
        entry = runner.registry.by_workflow_name(run.workflow_name)
        if card is None or entry is None:
            continue
        for req in run.step_requirements:
            if req.timed_out:
                what = {OnTimeout.approve: "approved", OnTimeout.reject: "rejected"}.get(req.on_timeout, "cancelled")  # type: ignore[arg-type]
                await runner.close_pause(
                    entry,
                    req,
                    None,
                    f":alarm_clock: Nobody answered in time: {what} automatically at {ui.slack_time(time.time())}",
                )
        await runner.present(entry, card, run)
    return len(moved)


async def sweep_forever(runner: Runner, interval: float = 1.0) -> None:
    """The background task: sweep every `interval` seconds until cancelled."""
    while True:
        try:
            await sweep_once(runner)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("deadline sweep failed")
        await asyncio.sleep(interval)
