"""Reminders, escalation and who is mentioned (issue 12, items 2, 3, 5 and 6): durable timers fired by
the sweeper, once across replicas and after a restart, cancelled by a decision or a deadline. End to end
through the stand-in, on both databases; time moves by giving the sweep a later `now`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot import blocks as ui
from bot.devslack import DevSlack, Message
from bot.policy import Approvers
from bot.registry import BotWorkflow, Registry
from bot.runs.sweeper import sweep_once
from kern.workflow import OnTimeout, Step, Workflow
from tests.conftest import make_db, unique
from tests.test_bot_e2e import SECRET, start_bot

LEADS = Approvers(users=("UBOSS",), groups=("SLEADS",))


def registry(db: object, names: dict[str, str]) -> Registry:
    def gate(name: str, **extra: object) -> Workflow:  # the same name after a restart: runs are found by it
        step = Step(
            name="ship",
            executor=lambda s: "shipped",
            requires_confirmation=True,
            confirmation_message="Ship version 2 to production?",
            **extra,
        )
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


def controls(message: Message) -> list[tuple[str, str]]:
    """The (action id, value) of each control of a message."""
    return [
        (el["action_id"], el.get("value", ""))
        for block in message.blocks
        if block["type"] == "actions"
        for el in block["elements"]
    ]


def element(message: Message, action_id: str) -> tuple[Message, dict[str, Any], str]:
    """A control of `message`, as `DevSlack.click(stale=...)` takes it (to click that very message)."""
    for block in message.blocks:
        for el in block.get("elements", []) if block["type"] == "actions" else []:
            if el["action_id"] == action_id:
                return message, el, block.get("block_id", "")
    raise LookupError(action_id)


def shown(message: Message) -> str:
    return message.text + json.dumps(message.blocks, ensure_ascii=False)


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
        assert len(reminders(slack)) == 1
        first = reminders(slack)[0]
        # the question, not the step id; only those the pause mentions are named
        assert first.startswith("<@U1> Reminder 1 of 2: Ship version 2 to production?")
        assert "UBACKUP" not in first
        await sweep(bot, t0 + 125)
        await sweep(bot, t0 + 250)  # max_reminders=2
        assert len(reminders(slack)) == 2 and "Reminder 2 of 2" in reminders(slack)[1]
        await slack.click(ui.CONFIRM, user="UBACKUP", thread_ts=pause.thread_ts)  # not pinged, still allowed
        await slack.until(lambda: "Completed" in json.dumps([m.blocks for m in slack.messages.values()]))
        await bot.background.idle(10)
        await sweep(bot, t0 + 1000)  # decided: the escalation never fires
        assert not [t for t in thread_texts(slack) if "Escalated" in t]
    finally:
        await server.cleanup()


async def test_a_reminder_carries_the_question_who_and_how_long_and_the_pauses_own_controls(
    db_kind: str, tmp_path: Path, names: dict[str, str], slack: DevSlack
) -> None:
    bot, server = await start(slack, db_kind, tmp_path, names, "nudge")
    t0 = time.time()
    try:
        pause = next(m for m in slack.messages.values() if m.thread_ts)
        await sweep(bot, t0 + 61)
        [reminder] = [m for m in slack.messages.values() if m.thread_ts and "Reminder" in m.text]
        seen = shown(reminder)
        assert "Ship version 2 to production?" in seen  # the question
        assert (
            ":bell: *Reminder 1 of 2* · <@U1>, this has waited *1 min* for your answer (since <!date^" in seen
        )  # who, how long
        assert "UBACKUP" not in seen and "SLEADS" not in seen  # nobody else named
        assert controls(reminder)[:2] == controls(pause)[:2]  # the pause's own Approve and Reject, same values
        assert "/archives/" in seen and "Open the pause message" in seen  # and a link to the pause

        # the same rules on the reminder's buttons: a lead may not answer before it escalated
        await slack.click(ui.CONFIRM, user="ULEAD", stale=element(reminder, ui.CONFIRM))
        await bot.background.idle(10)
        assert slack.ephemeral[-1]["user"] == "ULEAD" and "may answer this" in slack.ephemeral[-1]["text"]
        assert controls(slack.messages[pause.ts])  # nothing changed
        # an approver's click on the reminder approves the pause
        await slack.click(ui.CONFIRM, user="UBACKUP", stale=element(reminder, ui.CONFIRM))
        await slack.until(lambda: "Completed" in json.dumps([m.blocks for m in slack.messages.values()]))
        await bot.background.idle(10)
        assert "Approved by <@UBACKUP>" in json.dumps(slack.messages[pause.ts].blocks)
        # the reminder is redrawn decided: no controls, who answered, no "waits"
        await slack.until(lambda: not controls(slack.messages[reminder.ts]))
        decided = shown(slack.messages[reminder.ts])
        assert "Approved by <@UBACKUP>" in decided and "waited" not in decided and "<@U1>" not in decided
        await sweep(bot, t0 + 1000)  # no reminder nor escalation after the decision
        assert len([m for m in slack.messages.values() if "Reminder" in m.text or "Escalated" in m.text]) == 1
        assert slack.rejected == []
    finally:
        await server.cleanup()


async def test_a_reminder_whose_answer_was_lost_is_posted_once_and_closed_when_decided(
    db_kind: str, tmp_path: Path, names: dict[str, str], slack: DevSlack
) -> None:
    """Slack posts the reminder and its answer never comes back: the retry finds it in the thread by its
    metadata (the outbox row's id) instead of posting it again, and records it, so the decision closes it."""
    bot, server = await start(slack, db_kind, tmp_path, names, "nudge")
    bot.gateway.timeout = 0.5  # a call with no answer is given up after this
    bot.outbox.first_retry = 0.01
    t0 = time.time()
    try:
        pause = next(m for m in slack.messages.values() if m.thread_ts)
        slack.fault("chat.postMessage", "lose")
        await sweep(bot, t0 + 61)
        assert len(slack.lost) == 1 and len(reminders(slack)) == 1  # posted; the bot never heard
        for _ in range(4):  # the row's retry: due at once
            await asyncio.sleep(0.05)
            await sweep(bot, t0 + 61)
        [reminder] = [m for m in slack.messages.values() if m.thread_ts and "Reminder" in m.text]
        assert (reminder.metadata or {}).get("event_type") == "kern_owed"
        looked = [c for c in slack.calls if c[0] == "conversations.replies"]
        assert looked, "the retry did not look for its earlier post"
        await slack.click(ui.CONFIRM, user="UBACKUP", thread_ts=pause.thread_ts)
        await slack.until(lambda: "Completed" in json.dumps([m.blocks for m in slack.messages.values()]))
        await bot.background.idle(10)
        await slack.until(lambda: not controls(slack.messages[reminder.ts]))  # the adopted reminder is closed
        assert len(reminders(slack)) == 1
    finally:
        await server.cleanup()


async def test_a_reminder_owed_before_the_decision_is_not_sent_after_it(
    db_kind: str, tmp_path: Path, names: dict[str, str], slack: DevSlack
) -> None:
    bot, server = await start(slack, db_kind, tmp_path, names, "nudge")
    bot.outbox.first_retry = 0.5  # the failed reminder is tried again 0.25-0.5 s later, after the decision
    t0 = time.time()
    try:
        slack.fault("chat.postMessage", "error", error="internal_error", status=500)  # the reminder's post fails
        await sweep(bot, t0 + 61)
        card = next(m for m in slack.messages.values() if m.thread_ts is None)
        stored = await bot.store.card_at(card.channel, card.ts, team="")
        assert stored is not None
        owed = [r for r in await bot.store.owed(stored.run_id) if r["kind"] in ("remind", "notice")]
        assert [r["status"] for r in owed] == ["pending"]  # owed, not sent yet
        assert not [m for m in slack.messages.values() if "Reminder" in m.text]
        await slack.click(ui.CONFIRM, user="U1")
        await slack.until(lambda: "Completed" in json.dumps([m.blocks for m in slack.messages.values()]))
        await bot.background.idle(10)
        await asyncio.sleep(0.6)  # past its retry's backoff
        await sweep(bot, t0 + 62)
        await sweep(bot, time.time() + 5)
        assert not [m for m in slack.messages.values() if "Reminder" in m.text]  # never sent
        owed = [r for r in await bot.store.owed(stored.run_id) if r["kind"] in ("remind", "notice")]
        assert [r["status"] for r in owed] == ["done"]  # taken, and dropped: its pause was decided
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
        to_u1 = next(m for m in dms if m.channel == slack.dms["U1"])
        to_u2 = next(m for m in dms if m.channel == slack.dms["U2"])
        # each DM names its recipient alone, and carries the controls
        assert "<@U1>" in shown(to_u1) and "<@U2>" not in shown(to_u1)
        assert "<@U2>" in shown(to_u2) and "<@U1>" not in shown(to_u2)
        assert [a for a, _ in controls(to_u1)][:3] == [ui.CONFIRM, ui.OPEN_APPROVE, ui.OPEN_FEEDBACK]
        # rejected from U2's DM (the step skips on reject): "Reject…", its form; every copy and reminder closes
        await slack.click(ui.OPEN_FEEDBACK, user="U2", stale=element(to_u2, ui.OPEN_FEEDBACK))
        await bot.background.idle(10)
        note = {"text": {"v": {"type": "plain_text_input", "value": None}}}
        await slack.submit(slack.last_view()["id"], note, user="U2")
        await slack.until(lambda: "Completed" in json.dumps([m.blocks for m in slack.messages.values()]))
        await bot.background.idle(10)
        reminded = [m.ts for m in slack.messages.values() if "Reminder" in m.text]
        await slack.until(lambda: all(not controls(slack.messages[ts]) for ts in reminded))
        for ts in reminded:
            assert "Rejected by <@U2>" in shown(slack.messages[ts])
        assert slack.rejected == []
    finally:
        await server.cleanup()


def test_timer_rules_are_checked() -> None:
    with pytest.raises(ValueError, match="escalate_after and escalate_to go together"):
        Approvers(users=("U1",), escalate_after=60)
    with pytest.raises(ValueError, match=r"Approvers\(remind_after=0\): give a number of seconds above 0"):
        Approvers(users=("U1",), remind_after=0)
    with pytest.raises(ValueError, match="UX may not answer; notify names a subset"):
        Approvers(users=("U1",), notify=("UX",))
