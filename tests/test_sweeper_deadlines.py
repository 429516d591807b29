"""The sweeper applies deadlines and lets each run go on in the background (issue 24, item 24): a run whose
deadline fired and that then runs a slow step does not delay another run's deadline; what was decided is
durable at once, and a run whose continuation dies (as its process would) is taken over through its lease.
Through the real endpoint and the Slack stand-in, with the sweeper running as in production, on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.devslack import DevSlack
from bot.registry import BotWorkflow, Registry
from bot.runs import sweeper
from bot.runs.sweeper import sweep_forever
from kern.db.base import BaseDb
from kern.workflow import RunStatus, Step, StepInput, Workflow
from tests.conftest import make_db, unique
from tests.test_bot_e2e import SECRET, Env, run, run_id_of_card, settle, start_bot

SLOW = 2.5  # seconds the slow run's next step takes (the 12 s, shortened)
SLOW_DEADLINE, QUICK_DEADLINE = 0.3, 1.0  # seconds after their pauses (the quick one falls inside SLOW)
started: list[str] = []


async def slow_step(step_input: StepInput) -> str:
    started.append(str(step_input.input))
    await asyncio.sleep(SLOW)
    return "slow done"


def timed(name: str, timeout: float, after: Step) -> BotWorkflow:
    gate = Step(
        name="gate",
        executor=lambda s: "gate passed",
        requires_confirmation=True,
        hitl_timeout=timeout,
        on_timeout="approve",
    )
    return BotWorkflow(Workflow(name=unique(name), steps=[gate, after]), name=name)


@pytest.fixture
async def env(db_kind: str, tmp_path: Path) -> AsyncIterator[Env]:
    db = make_db(db_kind, tmp_path, lease_seconds=1.0)
    registry = Registry(
        [
            timed("slow", SLOW_DEADLINE, Step(name="crunch", executor=slow_step)),
            timed("quick", QUICK_DEADLINE, Step(name="done", executor=lambda s: "quick done")),
        ],
        db,
    )
    started.clear()
    async with DevSlack(SECRET) as slack:
        bot, runner, endpoint = await start_bot(slack, registry)
        slack.bot_endpoint = endpoint
        try:
            yield Env(slack, bot, db)
        finally:
            await bot.background.idle(15)
            await runner.cleanup()


async def decided_at(db: BaseDb, run_id: str) -> float:
    """When the run's pause was decided (its audit row), waiting for it to be."""
    for _ in range(200):
        rows = await db.audit_log(run_id=run_id)
        if rows:
            assert len(rows) == 1 and rows[0]["decision"] == "confirm"
            return float(rows[0]["at"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} was never decided")


async def deadline_of(env: Env, run_id: str) -> float:
    return float((await env.db.load_run(run_id)).output["step_requirements"][-1]["deadline"])


async def test_a_slow_run_after_its_deadline_does_not_delay_another_deadline(env: Env) -> None:
    await run(env, "slow a")
    slow = await run_id_of_card(env)
    await run(env, "quick b")
    quick = await run_id_of_card(env)
    sweeping = time.time()  # a deadline that passed before the sweeper started is due from then on
    sweeper = asyncio.create_task(sweep_forever(env.bot.runner, env.bot.registry, interval=0.05))
    try:
        slow_fired = await decided_at(env.db, slow)
        quick_fired = await decided_at(env.db, quick)
        quick_late = quick_fired - max(sweeping, await deadline_of(env, quick))
        # inline, the quick deadline waited for the slow step: about SLOW - (QUICK_DEADLINE - SLOW_DEADLINE) late
        assert quick_late < 0.8, f"the quick run's deadline fired {quick_late:.2f}s late"
        assert slow_fired - max(sweeping, await deadline_of(env, slow)) < 0.8
        assert started == ["a"]  # the slow step was running meanwhile
        for _ in range(200):  # both finish, and their cards say so
            if "slow done" in json_cards(env) and "quick done" in json_cards(env):
                break
            await asyncio.sleep(0.05)
        assert "slow done" in json_cards(env) and "quick done" in json_cards(env)
    finally:
        sweeper.cancel()
    for run_id in (slow, quick):
        assert (await env.db.load_run(run_id)).status == RunStatus.COMPLETED.value
    # (on the shared PostgreSQL the sweeper also delivers what other tests' runs still owe, to messages
    # that are not in this stand-in)
    assert [e for e in env.errors() if e[1].get("error") != "message_not_found"] == []


def json_cards(env: Env) -> str:
    return json.dumps([m.blocks for m in env.slack.messages.values() if m.thread_ts is None])


async def test_a_continuation_that_dies_is_taken_over(env: Env) -> None:
    await run(env, "slow c")
    slow = await run_id_of_card(env)
    sweeper = asyncio.create_task(sweep_forever(env.bot.runner, env.bot.registry, interval=0.05))
    try:
        await decided_at(env.db, slow)
        for _ in range(100):
            if started:
                break
            await asyncio.sleep(0.02)
        assert started == ["c"]
        # the process "dies" mid-step: its background work stops, its lease is no longer renewed
        sweeper.cancel()
        await env.bot.background.cancel_all()
        stored = await env.db.load_run(slow)
        assert stored.status == RunStatus.RUNNING.value  # the decision stands, the run is owned
        assert env.bot.runner.continuing == set()
        # another sweeper (the same process here) takes it over once the lease has expired
        sweeper = asyncio.create_task(sweep_forever(env.bot.runner, env.bot.registry, interval=0.1))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if (await env.db.load_run(slow)).status == RunStatus.COMPLETED.value:
                break
            await asyncio.sleep(0.1)
        await settle(env)
    finally:
        sweeper.cancel()
    assert (await env.db.load_run(slow)).status == RunStatus.COMPLETED.value
    assert started == ["c", "c"]  # the step in flight ran again; the decision was not re-made
    assert len(await env.db.audit_log(run_id=slow)) == 1


async def test_continuations_are_bounded(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """With room for one continuation, the quick deadline waits for the slow run to end (the next sweeps
    apply it then): the bound holds, and nothing is lost meanwhile."""
    monkeypatch.setattr(sweeper, "MOST_CONTINUING", 1)
    await run(env, "slow d")
    slow = await run_id_of_card(env)
    await run(env, "quick e")
    quick = await run_id_of_card(env)
    most = 0
    sweeping = time.time()
    task = asyncio.create_task(sweep_forever(env.bot.runner, env.bot.registry, interval=0.05))
    try:
        for _ in range(200):
            most = max(most, len(env.bot.runner.continuing))
            if await env.db.audit_log(run_id=quick):
                break
            await asyncio.sleep(0.05)
        quick_late = await decided_at(env.db, quick) - max(sweeping, await deadline_of(env, quick))
        assert (await env.db.load_run(slow)).status == RunStatus.COMPLETED.value  # it ended first
    finally:
        task.cancel()
    assert most == 1 and quick_late > SLOW - (QUICK_DEADLINE - SLOW_DEADLINE) - 0.5, quick_late
    await settle(env)
    assert (await env.db.load_run(quick)).status == RunStatus.COMPLETED.value
