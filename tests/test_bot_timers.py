"""Reminders, escalation and who is mentioned (issue 12, items 2, 3, 5 and 6): durable timers fired by
the sweeper, once across replicas and after a restart, cancelled by a decision or a deadline. End to end
through the stand-in, on both databases; time moves by giving the sweep a later `now`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import blocks as ui
from bot.devslack import DevSlack
from bot.policy import Approvers
from bot.registry import BotWorkflow, Registry
from bot.runs.sweeper import sweep_once
from kern.workflow import OnTimeout, Step, Workflow
from tests.conftest import make_db, unique
from tests.test_bot_e2e import SECRET, start_bot

LEADS = Approvers(users=("UBOSS",), groups=("SLEADS",))


def registry(db: object, names: dict[str, str]) -> Registry:
    def gate(name: str, **extra: object) -> Workflow:  # the same name after a restart: runs are found by it
        step = Step(name="ship", executor=lambda s: "shipped", requires_confirmation=True, **extra)
        return Workflow(name=name, steps=[step])

    return Registry(
        [
            BotWorkflow(
                gate(names["nudge"]),
                name=names["nudge"],
                approvers=Approvers(
                    users=("U1", "UBACKUP"),
                    notify=("U1",),
                    remind_after=60,
                    max_reminders=2,
                    escalate_after=300,
                    escalate_to=LEADS,
                ),
            ),
            BotWorkflow(
                gate(names["deadline"], hitl_timeout=100, on_timeout=OnTimeout.approve),
                name=names["deadline"],
                approvers=Approvers(users=("U1",), remind_after=200),
            ),
            BotWorkflow(
                gate(names["dm"]),
                name=names["dm"],
                approvers=Approvers(users=("U1", "U2"), remind_after=60, max_reminders=1),
                notify="dm",
            ),
        ],
        db,  # type: ignore[arg-type]
    )


@pytest.fixture
def names() -> dict[str, str]:
    return {"nudge": unique("nudge"), "deadline": unique("deadline"), "dm": unique("dm")}


@pytest.fixture
async def slack() -> AsyncIterator[DevSlack]:
    async with DevSlack(SECRET) as fake:
        fake.groups["SLEADS"] = ["ULEAD"]
        yield fake


def thread_texts(slack: DevSlack) -> list[str]:
    return [m.text for m in slack.messages.values() if m.thread_ts]


def reminders(slack: DevSlack) -> list[str]:
    return [t for t in thread_texts(slack) if "Reminder" in t]


async def start(slack: DevSlack, db_kind: str, tmp_path: Path, names: dict[str, str], which: str) -> tuple:
    bot, server, url = await start_bot(slack, registry(make_db(db_kind, tmp_path), names))
    slack.bot_endpoint = url
    await slack.command(f"run {names[which]}", user="U9")
    await slack.until(lambda: any("Approve" in json.dumps(m.blocks) for m in slack.messages.values() if m.thread_ts))
    await bot.background.idle(10)
    return bot, server


async def sweep(bot: object, at: float) -> None:
    await sweep_once(bot.runner, bot.registry, now=at)  # type: ignore[attr-defined]
    await bot.background.idle(10)  # type: ignore[attr-defined]


async def test_reminders_mention_only_those_notified_then_stop(
    db_kind: str, tmp_path: Path, names: dict[str, str], slack: DevSlack
) -> None:
    bot, server = await start(slack, db_kind, tmp_path, names, "nudge")
    t0 = time.time()
    try:
        pause = next(m for m in slack.messages.values() if m.thread_ts)
        assert pause.text.startswith("<@U1>") and "UBACKUP" not in pause.text  # notify: a subset is pinged
        await sweep(bot, t0 + 30)
        assert reminders(slack) == []
        await sweep(bot, t0 + 61)
        await sweep(bot, t0 + 61)  # the same moment again: no second nudge
        assert len(reminders(slack)) == 1 and "Reminder 1 of 2: <@U1>" in reminders(slack)[0]
        assert "UBACKUP" not in reminders(slack)[0]
        await sweep(bot, t0 + 125)
        await sweep(bot, t0 + 250)  # max_reminders=2
        assert [r.split(":")[1].strip() for r in reminders(slack)] == ["bell", "bell"]
        assert "Reminder 2 of 2" in reminders(slack)[1]
        await slack.click(ui.CONFIRM, user="UBACKUP")  # not pinged, still allowed
        await slack.until(lambda: "Completed" in json.dumps([m.blocks for m in slack.messages.values()]))
        await bot.background.idle(10)
        await sweep(bot, t0 + 1000)  # decided: the escalation never fires
        assert not [t for t in thread_texts(slack) if "Escalated" in t]
    finally:
        await server.cleanup()


async def test_a_restart_between_a_reminder_and_the_escalation(
    db_kind: str, tmp_path: Path, names: dict[str, str], slack: DevSlack
) -> None:
    bot, server = await start(slack, db_kind, tmp_path, names, "nudge")
    t0 = time.time()
    await sweep(bot, t0 + 61)
    assert len(reminders(slack)) == 1
    await slack.click(ui.CONFIRM, user="ULEAD")  # not yet: the leads may answer only once escalated
    await bot.background.idle(10)
    assert "may answer this" in slack.ephemeral[-1]["text"]
    await server.cleanup()  # the process goes away between the reminder and the escalation

    fresh, server2, url2 = await start_bot(slack, registry(make_db(db_kind, tmp_path), names))
    slack.bot_endpoint = url2
    try:
        await sweep(fresh, t0 + 301)
        await sweep(fresh, t0 + 302)
        escalated = [t for t in thread_texts(slack) if "Escalated" in t]
        assert len(escalated) == 1 and "<@UBOSS> <!subteam^SLEADS>" in escalated[0]
        await slack.until(
            lambda: (
                "Escalated to <@UBOSS> <!subteam^SLEADS>"
                in json.dumps([m.blocks for m in slack.messages.values() if m.thread_ts])
            )
        )
        card = next(m for m in slack.messages.values() if m.thread_ts is None)
        stored = await fresh.store.card_at(card.channel, card.ts, team="")
        assert stored is not None  # (the whole audit log, oldest first, is cut at 1,000 rows in a shared database)
        audit = await fresh.registry.db.audit_log(run_id=stored.run_id)
        assert len([a for a in audit if a["decision"] == "escalate" and a["data"]["to"].startswith("<@UBOSS>")]) >= 1
        await slack.click(ui.CONFIRM, user="ULEAD")  # a member of the escalation group may answer now
        await fresh.background.idle(10)
        await slack.until(lambda: "Completed" in json.dumps([m.blocks for m in slack.messages.values()]))
        decided = next(m for m in slack.messages.values() if "Approved by <@ULEAD>" in json.dumps(m.blocks))
        kept = json.dumps(decided.blocks)  # the decided message keeps the escalation, with its time
        assert ":arrow_double_up: Escalated to <@UBOSS> <!subteam^SLEADS> at <!date^" in kept
        assert "they may answer too" not in kept and "actions" not in kept
    finally:
        await fresh.background.idle(10)
        await server2.cleanup()


async def test_two_replicas_fire_each_timer_once(tmp_path: Path, names: dict[str, str], slack: DevSlack) -> None:
    bot_a, server_a = await start(slack, "postgres", tmp_path, names, "nudge")
    bot_b, server_b, _url = await start_bot(slack, registry(make_db("postgres", tmp_path), names))
    t0 = time.time()
    try:
        for at in (t0 + 61, t0 + 301):
            await asyncio.gather(sweep(bot_a, at), sweep(bot_b, at), sweep(bot_a, at), sweep(bot_b, at))
        # each timer once: reminder 1 at +61; at +301 reminder 2 (due at +121) and the escalation
        assert ["Reminder 1 of 2" in r for r in reminders(slack)] == [True, False]
        assert len([t for t in thread_texts(slack) if "Escalated" in t]) == 1
    finally:
        await server_a.cleanup()
        await server_b.cleanup()


async def test_a_deadline_first_cancels_the_reminders(
    db_kind: str, tmp_path: Path, names: dict[str, str], slack: DevSlack
) -> None:
    bot, server = await start(slack, db_kind, tmp_path, names, "deadline")
    t0 = time.time()
    try:
        await sweep(bot, t0 + 150)  # the deadline (100 s) approves
        await slack.until(lambda: "Completed" in json.dumps([m.blocks for m in slack.messages.values()]))
        await sweep(bot, t0 + 250)  # the reminder (200 s) was cancelled by that decision
        assert reminders(slack) == []
    finally:
        await server.cleanup()


async def test_reminders_go_by_dm_when_the_workflow_dms(
    db_kind: str, tmp_path: Path, names: dict[str, str], slack: DevSlack
) -> None:
    bot, server = await start(slack, db_kind, tmp_path, names, "dm")
    t0 = time.time()
    try:
        await sweep(bot, t0 + 61)
        dms = [m for m in slack.messages.values() if m.channel.startswith("D") and "Reminder" in m.text]
        assert sorted(m.channel for m in dms) == sorted({m.channel for m in dms}) and len(dms) == 2
        assert len(reminders(slack)) == 1  # and once in the thread
    finally:
        await server.cleanup()


def test_timer_rules_are_checked() -> None:
    with pytest.raises(ValueError, match="escalate_after and escalate_to go together"):
        Approvers(users=("U1",), escalate_after=60)
    with pytest.raises(ValueError, match=r"Approvers\(remind_after=0\): give a number of seconds above 0"):
        Approvers(users=("U1",), remind_after=0)
    with pytest.raises(ValueError, match="UX may not answer; notify names a subset"):
        Approvers(users=("U1",), notify=("UX",))
