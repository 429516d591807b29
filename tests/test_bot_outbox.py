"""kern-bot keeps what it owes Slack: pause messages, card updates and decided messages survive Slack
errors, and a running run can be cancelled (it stops at its next node). In-process bots on real
databases and the local Slack stand-in; the crash cases with real processes are in test_bot_recovery."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot import blocks as ui
from bot.delivery.outbox import backoff
from bot.devslack import DevSlack
from bot.registry import BotWorkflow, Registry
from bot.runs import runner as runner_module
from bot.runs.runner import STATUS_AFTER, Budget
from bot.runs.sweeper import sweep_once
from bot.store import Card
from kern.run.base import RunStatus
from kern.run.workflow import WorkflowRunOutput
from kern.workflow import Step, Workflow
from tests.conftest import make_db, unique
from tests.test_bot_e2e import SECRET, Env, run_id_of_card, start_bot
from tests.test_bot_ops import scrape

GATE: dict[str, asyncio.Event] = {}
RAN: list[str] = []


async def gated(step_input: Any) -> str:
    """Waits until the test opens this run's gate (keyed by workflow name in additional_data)."""
    RAN.append("gated")
    await GATE[step_input.additional_data["gate"]].wait()
    return "gated done"


def after(step_input: Any) -> str:
    RAN.append("after")
    return f"after {step_input.previous_step_content}"


def flows(gate: str) -> list[BotWorkflow]:
    return [
        BotWorkflow(
            Workflow(
                name=unique("gated"),
                additional_data={"gate": gate},
                steps=[
                    Step(name="wait", executor=gated),
                    Step(name="check", executor=after, requires_confirmation=True),
                    Step(name="last", executor=after),
                ],
            ),
            name="gated",
        )
    ]


@pytest.fixture
async def gated_env(db_kind: str, tmp_path: Path) -> AsyncIterator[tuple[Env, asyncio.Event]]:
    db = make_db(db_kind, tmp_path, lease_seconds=0.6)
    gate = unique("gate")
    GATE[gate] = asyncio.Event()
    RAN.clear()
    async with DevSlack(SECRET) as slack:
        bot, server, endpoint = await start_bot(slack, Registry(flows(gate), db))
        bot.outbox.first_retry = 0.01
        slack.bot_endpoint = endpoint
        try:
            yield Env(slack, bot, db), GATE[gate]
        finally:
            GATE[gate].set()
            await bot.background.idle(10)
            await server.cleanup()


async def started(env: Env) -> str:
    """Start the gated workflow; returns its run id once the card is up."""
    status, _, _ = await env.slack.command("run gated")
    assert status == 200
    await env.slack.until(lambda: any(m.thread_ts is None for m in env.slack.messages.values()))
    await env.slack.until(lambda: RAN == ["gated"])
    return await run_id_of_card(env)


def thread_pauses(env: Env) -> list[Any]:
    return [
        m for m in env.slack.messages.values() if m.thread_ts and (m.metadata or {}).get("event_type") == "kern_pause"
    ]


async def sweep_until(env: Env, done: Any, within: float = 10.0) -> None:
    """Sweep (as every bot process does each second) until `done()`."""
    deadline = time.monotonic() + within
    while not done():
        assert time.monotonic() < deadline, "not delivered in time"
        await sweep_once(env.bot.runner, env.bot.registry)
        await asyncio.sleep(0.02)


async def test_pause_message_survives_slack_errors(gated_env: tuple[Env, asyncio.Event]) -> None:
    env, gate = gated_env
    run_id = await started(env)
    env.slack.fail_next["chat.postMessage"] = ["internal_error", "fatal_error", "service_unavailable"]
    gate.set()
    await env.bot.background.idle(10)
    run = await env.bot.registry.get("gated").workflow.aget_run(run_id)  # type: ignore[union-attr]
    assert run.status == RunStatus.PAUSED and thread_pauses(env) == []  # paused, but Slack refused the post
    owed = await env.bot.store.owed(run_id)
    pause_row = next(r for r in owed if r["kind"] == "pause")
    assert pause_row["status"] == "pending" and pause_row["attempts"] == 1 and "internal_error" in pause_row["error"]
    await sweep_until(env, lambda: len(thread_pauses(env)) == 1)
    owed = await env.bot.store.owed(run_id)
    assert [r["status"] for r in owed] == ["done"] * len(owed)
    assert next(r for r in owed if r["kind"] == "pause")["attempts"] == 3
    assert "Waiting: check" in json.dumps(env.card().blocks)  # the card caught up too
    # the decided message and the final card survive chat.update errors the same way
    env.slack.fail_next["chat.update"] = ["internal_error", "internal_error"]
    await env.slack.click(ui.CONFIRM)
    await env.bot.background.idle(10)
    await sweep_until(env, lambda: "Completed" in json.dumps(env.card().blocks))
    await sweep_until(env, lambda: "*Approved*" in json.dumps(thread_pauses(env)[0].blocks))
    assert len(thread_pauses(env)) == 1 and RAN == ["gated", "after", "after"]


def card_updates(env: Env, ts: str) -> list[str]:
    """The blocks of every accepted chat.update of the message `ts` (the run card), oldest first."""
    return [
        json.dumps(args.get("blocks"))
        for method, args, body in env.slack.calls
        if method == "chat.update" and args.get("ts") == ts and body.get("ok")
    ]


async def test_the_card_says_running_only_for_a_step_that_takes_a_while(gated_env: tuple[Env, asyncio.Event]) -> None:
    """A status line for the slow step (after STATUS_AFTER), none for the quick ones, and never one that
    lands after the card's next state."""
    env, gate = gated_env
    await started(env)
    card = env.card()
    await env.slack.until(lambda: any("Running wait" in u for u in card_updates(env, card.ts)), within=5)
    gate.set()
    await env.bot.background.idle(10)
    assert "Waiting: check" in card_updates(env, card.ts)[-1]
    await env.slack.click(ui.CONFIRM)
    await env.bot.background.idle(10)
    updates = card_updates(env, card.ts)
    assert "Completed" in updates[-1]
    assert [u for u in updates if "Running" in u] == [updates[0]]  # the quick steps ran without one


async def test_status_lines_wait_for_the_process_budget(gated_env: tuple[Env, asyncio.Event]) -> None:
    """Status lines are sent within a process-wide budget (STATUS_RATE a second; under a burst every step
    waits its turn longer than STATUS_AFTER, and unbudgeted lines nearly doubled the Slack calls). A line
    over the budget waits while its step runs, and is sent when its turn comes."""
    env, gate = gated_env
    env.bot.runner.status_budget = Budget(0.2)  # a fifth of a turn in hand: the line waits 4 s for its turn
    await started(env)
    card = env.card()

    def running_lines() -> list[str]:
        return [u for u in card_updates(env, card.ts) if "Running" in u]

    await asyncio.sleep(STATUS_AFTER + 0.4)  # the slow step has run well past STATUS_AFTER
    assert running_lines() == []  # over the budget: waiting for its turn
    await env.slack.until(lambda: len(running_lines()) == 1, within=15)
    gate.set()
    await env.bot.background.idle(10)
    assert "Waiting: check" in json.dumps(env.card().blocks) and len(running_lines()) == 1


def test_budget_gives_turns_at_its_rate_and_takes_back_unused_ones() -> None:
    now = [100.0]
    budget = Budget(5.0, clock=lambda: now[0])
    assert [budget.reserve() for _ in range(5)] == [0.0] * 5  # a quiet second's worth at once
    assert budget.reserve() == pytest.approx(0.2)  # then one every fifth of a second
    assert budget.reserve() == pytest.approx(0.4)
    budget.refund()  # the last one was not used
    assert budget.reserve() == pytest.approx(0.4)
    now[0] += 10  # a quiet spell refills one second's worth, no more
    assert [budget.reserve() for _ in range(6)] == [0.0] * 5 + [pytest.approx(0.2)]
    with pytest.raises(ValueError, match="rate must be positive"):
        Budget(0)


async def test_cancel_a_running_run_stops_it_at_the_next_node(gated_env: tuple[Env, asyncio.Event]) -> None:
    env, gate = gated_env
    run_id = await started(env)
    await env.slack.command(f"cancel {run_id}", user="U1")
    await env.slack.until(lambda: "Cancelled by" in json.dumps(env.card().blocks))
    gate.set()  # the step in flight finishes; nothing after it runs
    await env.bot.background.idle(10)
    run = await env.bot.registry.get("gated").workflow.aget_run(run_id)  # type: ignore[union-attr]
    assert run.status == RunStatus.CANCELLED and run.content == "Cancelled by <@U1>"
    assert RAN == ["gated"] and thread_pauses(env) == []
    # what the step did after the cancel is recorded, and the thread is told who cancelled it mid-step
    assert (await env.db.load_run(run_id)).journal["0"]["content"] == "gated done"
    audit = await env.db.audit_log(run_id=run_id)
    assert [(a["decision"], a["step_name"]) for a in audit] == [("cancel", ""), ("finished_after_cancel", "wait")]
    await env.slack.until(lambda: any("was running when" in m.text for m in env.slack.messages.values()))
    told = next(m.text for m in env.slack.messages.values() if "was running when" in m.text)
    assert told.startswith(":warning: *wait* was running when the run was cancelled by <@U1> at <!date^")
    assert "finished after the cancel" in told
    await env.slack.command(f"cancel {run_id}", user="U1")
    await env.slack.until(lambda: "was already cancelled; nothing to cancel" in env.slack.ephemeral[-1]["text"])


async def orphan(env: Env) -> str:
    """A run as a process leaves it when it dies in its first step: its card is up, its row RUNNING with a
    lease nobody renews (written through the store, as the engine's first checkpoint writes it)."""
    entry = env.bot.registry.get("gated")
    assert entry is not None
    run = WorkflowRunOutput(
        run_id=uuid.uuid4().hex,
        session_id=uuid.uuid4().hex,
        workflow_name=entry.workflow.name,
        status=RunStatus.RUNNING,
        additional_data=dict(entry.workflow.additional_data),
    )
    card = Card(run_id=run.run_id, workflow="gated", channel="C1", ts="", started_by="U1", input="")
    card.ts = (await env.bot.gateway.send("chat_postMessage", channel="C1", text="Starting…"))["ts"]
    await env.bot.store.save_card(card)
    await env.db.save_run(run.to_dict(), {}, version=0)
    return run.run_id


async def test_cancel_an_orphaned_run(gated_env: tuple[Env, asyncio.Event]) -> None:
    env, _gate = gated_env
    run_id = await orphan(env)
    entry = env.bot.registry.get("gated")
    assert entry is not None
    assert await env.db.orphaned_runs([entry.workflow.name]) == []  # its lease still runs
    await asyncio.sleep(0.8)
    assert await env.db.orphaned_runs([entry.workflow.name]) == [run_id]
    await env.slack.command(f"cancel {run_id}", user="U1")
    await env.slack.until(lambda: "Cancelled by" in json.dumps(env.card().blocks))
    assert await env.db.orphaned_runs([entry.workflow.name]) == []
    assert (await entry.workflow.aget_run(run_id)).status == RunStatus.CANCELLED


async def test_orphaned_run_is_taken_over_by_a_sweep(gated_env: tuple[Env, asyncio.Event]) -> None:
    env, gate = gated_env
    run_id = await orphan(env)
    gate.set()
    assert await sweep_once(env.bot.runner, env.bot.registry) == 0  # its lease has not expired yet
    await asyncio.sleep(0.8)
    assert await sweep_once(env.bot.runner, env.bot.registry, metrics=env.bot.metrics) == 1
    await env.bot.background.idle(10)
    await env.slack.until(lambda: len(thread_pauses(env)) == 1)
    assert (await scrape(env.slack.bot_endpoint))[("kern_bot_takeovers_total", ())] == 1
    assert "Waiting: check" in json.dumps(env.card().blocks)
    assert RAN == ["gated"]  # the step in flight ran again (here: for the first time); nothing else did
    assert await sweep_once(env.bot.runner, env.bot.registry) == 0
    await env.slack.click(ui.CONFIRM)
    await env.slack.until(lambda: "Completed" in json.dumps(env.card().blocks))
    assert (await env.bot.registry.get("gated").workflow.aget_run(run_id)).status == RunStatus.COMPLETED  # type: ignore[union-attr]


def test_backoff_doubles_and_honours_retry_after() -> None:
    assert 0.5 <= backoff(0) <= 1.0
    assert 4.0 <= backoff(3) <= 8.0
    assert backoff(30) <= 300.0
    assert backoff(0, retry_after=20) >= 20


async def test_two_processes_sweep_one_orphan_it_is_taken_over_once(db_kind: str, tmp_path: Path) -> None:
    """Two bot processes (separate stores on one database) sweep at the same moment: one takes the run over,
    its step runs once more (the one in flight), and one pause message is posted."""
    gate = unique("gate")
    GATE[gate] = asyncio.Event()
    GATE[gate].set()
    RAN.clear()
    entries = flows(gate)
    twin = BotWorkflow(
        Workflow(name=entries[0].workflow.name, steps=entries[0].workflow.steps, additional_data={"gate": gate}),
        name="gated",
    )
    db_a, db_b = make_db(db_kind, tmp_path, lease_seconds=0.5), make_db(db_kind, tmp_path, lease_seconds=0.5)
    async with DevSlack(SECRET) as slack:
        bot_a, server_a, url_a = await start_bot(slack, Registry(entries, db_a))
        bot_b, server_b, _url_b = await start_bot(slack, Registry([twin], db_b))
        slack.bot_endpoint = url_a
        try:
            env = Env(slack, bot_a, db_a)
            run_id = await orphan(env)
            await asyncio.sleep(0.7)
            moved = await asyncio.gather(
                sweep_once(bot_a.runner, bot_a.registry), sweep_once(bot_b.runner, bot_b.registry)
            )
            assert sum(moved) >= 1
            await asyncio.gather(bot_a.background.idle(10), bot_b.background.idle(10))
            await slack.until(lambda: len(thread_pauses(env)) == 1)
            await asyncio.sleep(0.2)
            assert RAN == ["gated"] and len(thread_pauses(env)) == 1  # taken over once
            assert (await entries[0].workflow.aget_run(run_id)).status == RunStatus.PAUSED
        finally:
            await asyncio.gather(bot_a.background.idle(10), bot_b.background.idle(10))
            await server_a.cleanup()
            await server_b.cleanup()


async def test_a_sweep_leaves_a_run_being_driven_here_to_its_own_delivery(
    gated_env: tuple[Env, asyncio.Event],
) -> None:
    """What a run owes while this process drives it is this process's to deliver when the drive stops: a
    sweep meanwhile does not claim it (in a burst that was one UPDATE per message in flight, to send none);
    once the drive has stopped, a sweep takes what is left."""
    env, gate = gated_env
    run_id = await started(env)  # its first step is running (waiting on the gate): driven by this process
    outbox = env.bot.outbox

    def owe(tx: Any) -> None:
        env.bot.store.owe(tx, run_id, "card", holder=outbox.me, hold=outbox.hold)

    await env.db.run_hot(owe)
    before = await env.bot.store.owed(run_id)
    await sweep_once(env.bot.runner, env.bot.registry)
    after_sweep = await env.bot.store.owed(run_id)
    assert after_sweep == before and [r["status"] for r in after_sweep] == ["pending"]  # not even claimed
    gate.set()  # the drive goes on to its pause and delivers everything it owes, ours included
    await env.bot.background.idle(10)
    assert {r["status"] for r in await env.bot.store.owed(run_id)} == {"done"}
    assert len(thread_pauses(env)) == 1

    # Owed by this process for a run nobody drives here (as a deadline's decision in a sweep): swept at once.
    await env.db.run_hot(owe)
    await sweep_once(env.bot.runner, env.bot.registry)
    assert {r["status"] for r in await env.bot.store.owed(run_id)} == {"done"}


def counting_run_reads(env: Env) -> list[str]:
    """The run ids `env.db.load_run` reads from now on (a run read back from the store)."""
    reads: list[str] = []
    load_run = env.db.load_run

    async def counted(run_id: str) -> Any:
        reads.append(run_id)
        return await load_run(run_id)

    env.db.load_run = counted  # type: ignore[method-assign]
    return reads


async def test_after_a_drive_the_cards_are_drawn_from_what_it_wrote_not_read_back(
    gated_env: tuple[Env, asyncio.Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A click reads the run once (to check the click against the stored pause); the card and the next
    pause's message are drawn from the state the drive wrote, without reading it back."""
    # One delivery at the drive's end, however slow the machine (not the decided message on its own first).
    monkeypatch.setattr(runner_module, "DECIDED_SOON", 30.0)
    env, gate = gated_env
    run_id = await started(env)
    gate.set()
    await env.slack.until(lambda: len(thread_pauses(env)) == 1)
    await env.bot.background.idle(10)
    reads = counting_run_reads(env)
    await env.slack.click(ui.CONFIRM)
    await env.slack.until(lambda: "Completed" in json.dumps(env.card().blocks))
    await env.bot.background.idle(10)
    assert "after gated done" in json.dumps(env.card().blocks)  # the drive's last step, as it wrote it
    assert reads == [run_id], reads  # the click's check; before, the delivery read the run a second time
    assert env.errors() == []


async def test_a_drive_that_lost_its_run_draws_what_it_owes_from_the_store(
    db_kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Approved, then cancelled by another process while the next step runs: the drive stops (its next
    write fails its compare-and-set), and what it still owes (the decided message) is delivered, drawn
    from the run as stored now rather than as this process last wrote it."""
    monkeypatch.setattr(runner_module, "DECIDED_SOON", 30.0)  # the decided message waits for the drive's end
    gate = unique("gate")
    GATE[gate] = asyncio.Event()
    RAN.clear()
    workflow = Workflow(
        name=unique("approve-then-wait"),
        additional_data={"gate": gate},
        steps=[Step(name="check", executor=after, requires_confirmation=True), Step(name="wait", executor=gated)],
    )
    db = make_db(db_kind, tmp_path)
    elsewhere = Workflow(name=workflow.name, steps=workflow.steps, db=make_db(db_kind, tmp_path))
    async with DevSlack(SECRET) as slack:
        bot, server, endpoint = await start_bot(slack, Registry([BotWorkflow(workflow, name="gated")], db))
        slack.bot_endpoint = endpoint
        env = Env(slack, bot, db)
        try:
            await slack.command("run gated")
            await slack.until(lambda: len(thread_pauses(env)) == 1)
            run_id = await run_id_of_card(env)
            await bot.background.idle(10)
            await slack.click(ui.CONFIRM)
            await slack.until(lambda: RAN == ["after", "gated"])  # approved; the next step is running
            await elsewhere.acancel_run(run_id, by="another process")
            reads = counting_run_reads(env)
            GATE[gate].set()
            decided = thread_pauses(env)[0].ts
            await slack.until(lambda: "Approved by <@U1>" in json.dumps(slack.messages[decided].blocks))
            await bot.background.idle(10)
            assert run_id in reads  # drawn from the store: this process's last write is not the run's state now
            assert (await elsewhere.aget_run(run_id)).status == RunStatus.CANCELLED
            assert RAN == ["after", "gated"] and env.errors() == []
        finally:
            GATE[gate].set()
            await bot.background.idle(10)
            await server.cleanup()
            await elsewhere.db.close()
