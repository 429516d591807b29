"""N of M (issue 12, item 1): a pause that needs several people's approval, end to end through the
stand-in, on both databases. Votes are counted once per person, land in kern's audit log, show on the
pause message, and resolve the pause exactly once, however many people click at once."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot import blocks as ui
from bot.config import SettingsError
from bot.policy import Approvers
from bot.registry import BotWorkflow, Registry
from bot.runs.sweeper import sweep_once
from bot.store.tables import handovers, outbox, votes
from kern.run.base import RunStatus
from kern.workflow import Step, Workflow
from tests.conftest import make_db, unique
from tests.test_bot_e2e import Env, bot_env, open_reject, reject, run_id_of_card, settle

TEAM = tuple(f"U{n:02d}" for n in range(1, 21))  # twenty people allowed to approve
shipped: list[str] = []


def ship(step_input: Any) -> str:
    shipped.append(str(step_input.input))
    return "shipped"


def workflows() -> list[BotWorkflow]:
    two_of_m = Approvers(users=TEAM, required=2)
    return [
        BotWorkflow(
            Workflow(name=unique("quorum"), steps=[Step(name="ship", executor=ship, requires_confirmation=True)]),
            name="quorum",
            approvers=two_of_m,
        ),
        BotWorkflow(
            Workflow(name=unique("twice"), steps=[Step(name="ship", executor=ship, requires_confirmation=True)]),
            name="twice",
            approvers=Approvers(users=TEAM, required=2, reject_required=2),
        ),
        BotWorkflow(
            Workflow(
                name=unique("mixed"),
                steps=[
                    Step(name="draft", executor=lambda s: "v1", requires_output_review=True),
                    Step(name="ship", executor=ship, requires_confirmation=True),
                ],
            ),
            name="mixed",
            approvers=Approvers(users=TEAM),
            step_approvers={"ship": two_of_m},
        ),
        BotWorkflow(
            Workflow(name=unique("selfish"), steps=[Step(name="ship", executor=ship, requires_confirmation=True)]),
            name="selfish",
            approvers=Approvers(users=TEAM, forbid_self_approval=True),
        ),
        BotWorkflow(
            Workflow(name=unique("selfish2"), steps=[Step(name="ship", executor=ship, requires_confirmation=True)]),
            name="selfish2",
            approvers=Approvers(users=TEAM, required=2, forbid_self_approval=True),
        ),
        BotWorkflow(
            Workflow(name=unique("single"), steps=[Step(name="ship", executor=ship, requires_confirmation=True)]),
            name="single",
            approvers=Approvers(users=TEAM),
        ),
    ]


@pytest.fixture
async def env(db_kind: str, tmp_path: Path) -> AsyncIterator[Env]:
    shipped.clear()
    db = make_db(db_kind, tmp_path)
    async with bot_env(Registry(workflows(), db), db) as env:
        yield env


async def paused(env: Env, name: str) -> str:
    await env.slack.command(f"run {name} release-{len(shipped)}", user="U01")
    await settle(env)
    await env.slack.until(lambda: any(m.thread_ts for m in env.slack.messages.values()))
    return await run_id_of_card(env)


async def status(env: Env, name: str, run_id: str) -> RunStatus:
    entry = env.bot.registry.get(name)
    assert entry is not None
    return (await entry.workflow.aget_run(run_id)).status


async def vote_rows(env: Env, run_id: str) -> list[tuple[str, bool]]:
    query = sa.select(votes.c.user_id, votes.c.approve).where(votes.c.run_id == run_id).order_by(votes.c.at)
    return await env.db.run_transaction(lambda c: [tuple(r) for r in c.execute(query)], write=False)


def pause_message(env: Env) -> str:
    return json.dumps([m.blocks for m in env.slack.messages.values() if m.thread_ts])


async def test_two_approvals_resolve_and_each_person_counts_once(env: Env) -> None:
    run_id = await paused(env, "quorum")
    await env.slack.click(ui.CONFIRM, user="U01")
    await settle(env)
    assert env.slack.ephemeral[-1]["user"] == "U01"
    assert "Your approval is counted. Approvals: 1 of 2 (<@U01>)" in env.slack.ephemeral[-1]["text"]
    await env.slack.until(lambda: "Approvals: 1 of 2 (<@U01>)" in pause_message(env))
    assert await status(env, "quorum", run_id) == RunStatus.PAUSED and shipped == []

    await env.slack.click(ui.CONFIRM, user="U01")  # the same person again: still one vote
    await settle(env)
    assert "already voted" in env.slack.ephemeral[-1]["text"] and "1 of 2" in env.slack.ephemeral[-1]["text"]
    assert await status(env, "quorum", run_id) == RunStatus.PAUSED

    await env.slack.click(ui.CONFIRM, user="U02")
    await env.slack.until(lambda: "Completed" in json.dumps(env.card().blocks))
    assert shipped == ["release-0"] and await vote_rows(env, run_id) == [("U01", True), ("U02", True)]
    audit = await env.db.audit_log(run_id=run_id)
    assert [(a["actor"], a["decision"]) for a in audit if a["decision"].startswith("vote")] == [
        ("U01", "vote_approve"),
        ("U02", "vote_approve"),
    ]
    assert "Approved by <@U02>" in pause_message(env)


async def test_a_reject_rejects_at_once_and_reject_required_asks_for_more(env: Env) -> None:
    run_id = await paused(env, "quorum")
    await env.slack.click(ui.CONFIRM, user="U01")
    await settle(env)
    await reject(env, "U03")
    await env.slack.until(lambda: "Rejected by <@U03>" in pause_message(env))
    assert shipped == [] and await status(env, "quorum", run_id) == RunStatus.COMPLETED  # on_reject=skip

    run_id = await paused(env, "twice")
    await reject(env, "U04")
    assert "Your rejection is counted" in env.slack.ephemeral[-1]["text"]
    assert "Rejections: 1 of 2 (<@U04>)" in env.slack.ephemeral[-1]["text"]
    assert await status(env, "twice", run_id) == RunStatus.PAUSED
    await reject(env, "U05")
    await env.slack.until(lambda: "Rejected by <@U05>" in pause_message(env))
    assert shipped == [] and await vote_rows(env, run_id) == [("U04", False), ("U05", False)]


async def test_a_vote_by_someone_not_allowed_changes_nothing(env: Env) -> None:
    run_id = await paused(env, "quorum")
    await env.slack.click(ui.CONFIRM, user="UOUTSIDER")
    await settle(env)
    assert "may answer this" in env.slack.ephemeral[-1]["text"]
    assert await vote_rows(env, run_id) == [] and await status(env, "quorum", run_id) == RunStatus.PAUSED
    assert not [a for a in await env.db.audit_log(run_id=run_id) if a["decision"].startswith("vote")]


async def test_twenty_people_vote_at_once_one_resolution(env: Env) -> None:
    run_id = await paused(env, "quorum")
    button = env.slack.find(ui.CONFIRM)
    await asyncio.gather(*(env.slack.click(ui.CONFIRM, user=user, stale=button) for user in TEAM))
    await env.slack.until(lambda: "Completed" in json.dumps(env.card().blocks), within=20)
    await settle(env)
    assert shipped == ["release-0"]  # the run resumed exactly once
    rows = await vote_rows(env, run_id)
    assert len(rows) >= 2 and len({u for u, _ in rows}) == len(rows) and all(a for _, a in rows)
    audit = [a for a in await env.db.audit_log(run_id=run_id) if a["decision"] == "vote_approve"]
    assert sorted(a["actor"] for a in audit) == sorted(u for u, _ in rows)  # every recorded vote, once
    decisions = [a for a in await env.db.audit_log(run_id=run_id) if not a["decision"].startswith("vote")]
    assert len(decisions) == 1  # one resolution of the pause


async def test_per_step_approvers_and_edits_take_one_answer(env: Env) -> None:
    run_id = await paused(env, "mixed")
    await env.slack.click(ui.CONFIRM, user="U01")  # the review of "draft": the workflow's rules, one person
    await env.slack.until(lambda: len([m for m in env.slack.messages.values() if m.thread_ts]) >= 2)
    assert await vote_rows(env, run_id) == []
    await env.slack.click(ui.CONFIRM, user="U01")  # the "ship" gate: two people
    await settle(env)
    assert "Your approval is counted. Approvals: 1 of 2" in env.slack.ephemeral[-1]["text"]
    await env.slack.click(ui.CONFIRM, user="U02")
    await env.slack.until(lambda: "Completed" in json.dumps(env.card().blocks))
    assert shipped and await vote_rows(env, run_id) == [("U01", True), ("U02", True)]


def test_rules_that_cannot_work_are_refused_with_the_field() -> None:
    with pytest.raises(ValueError, match=r"Approvers\(required=0\): give a whole number, at least 1"):
        Approvers(users=("U1",), required=0)
    with pytest.raises(ValueError, match=r"Approvers\(users='U1'\): give a tuple of ids"):
        Approvers(users="U1")  # type: ignore[arg-type]
    wf = Workflow(name=unique("w"), steps=[Step(name="ship", executor=ship)])
    with pytest.raises(SettingsError, match="step_approvers names no step 'shp'; its steps are 'ship'"):
        BotWorkflow(wf, step_approvers={"shp": Approvers(required=2)})
    assert Approvers(users=["U1", "U2"], required=2).users == ("U1", "U2")  # type: ignore[arg-type]
    assert "2 approvals needed" in Approvers(users=("U1",), required=2).describe()


# ----- reassignment (issue 12, item 4) --------------------------------------------------------------------
async def hand_over(env: Env, by: str, to: str | None, note: str = "") -> tuple[int, str]:
    await env.slack.click(ui.HANDOVER, user=by)
    await settle(env)
    view = env.slack.last_view()
    values = {"to": {"v": {"type": "users_select", "selected_user": to}}, "note": {"v": {"value": note}}}
    status, body, _ = await env.slack.submit(view["id"], values, user=by)
    await settle(env)
    return status, body


async def test_a_pause_handed_over_may_be_answered_by_the_new_person(env: Env) -> None:
    run_id = await paused(env, "quorum")
    await env.slack.click(ui.CONFIRM, user="UNEW")  # not an approver: refused
    await settle(env)
    assert "may answer this" in env.slack.ephemeral[-1]["text"]

    status, body = await hand_over(env, "U01", None)
    assert status == 200 and "Choose the person" in body  # the form says what is missing
    status, body = await hand_over(env, "U01", "U01")
    assert "someone other than yourself" in body
    await hand_over(env, "U01", "UNEW", note="you know this release")
    notice = [m for m in env.slack.messages.values() if m.thread_ts and "<@UNEW>" in m.text]
    assert (
        len(notice) == 1 and "<@U01> handed you *ship*" in notice[0].text and "you know this release" in notice[0].text
    )
    await env.slack.until(lambda: "Handed to <@UNEW> by <@U01>" in pause_message(env))
    audit = [a for a in await env.db.audit_log(run_id=run_id) if a["decision"] == "handover"]
    assert [(a["actor"], a["data"], a["note"]) for a in audit] == [("U01", {"to": "UNEW"}, "you know this release")]

    await hand_over(env, "U02", "UNEW")  # handed to the same person again: nothing new
    assert "already handed" in env.slack.ephemeral[-1]["text"]
    assert len([m for m in env.slack.messages.values() if m.thread_ts and "<@UNEW>," in m.text]) == 1

    await env.slack.click(ui.CONFIRM, user="UNEW")  # now they may vote: 1 of 2
    await settle(env)
    assert "Your approval is counted. Approvals: 1 of 2 (<@UNEW>)" in env.slack.ephemeral[-1]["text"]
    await env.slack.click(ui.CONFIRM, user="U02")
    await env.slack.until(lambda: "Completed" in json.dumps(env.card().blocks))
    assert shipped == ["release-0"]


async def test_only_those_who_may_answer_can_hand_over(env: Env) -> None:
    run_id = await paused(env, "quorum")
    await env.slack.click(ui.HANDOVER, user="UOUTSIDER")
    await settle(env)
    assert "may answer this" in json.dumps(env.slack.last_view())  # the form says no instead
    await env.bot.handovers.hand_over(
        env.slack.find(ui.CONFIRM)[2].removeprefix("a:"), "UOUTSIDER", "UNEW", None
    )  # a forged submission is checked again
    await settle(env)
    assert not [a for a in await env.db.audit_log(run_id=run_id) if a["decision"] == "handover"]
    await env.slack.click(ui.CONFIRM, user="UNEW")
    await settle(env)
    assert "may answer this" in env.slack.ephemeral[-1]["text"]


async def test_the_app_home_shows_where_each_pause_stands(env: Env) -> None:
    await paused(env, "quorum")
    await env.slack.click(ui.CONFIRM, user="U01")
    await settle(env)
    await hand_over(env, "U02", "UNEW")  # U02's vote goes to UNEW
    for user in ("U03", "UNEW"):  # an approver, and the person it was handed to (not an approver)
        await env.slack.open_home(user)
        await settle(env)
        home = json.dumps(env.slack.homes[user]["blocks"])
        assert "kern:confirm" in home  # listed, with its controls
        assert "Approvals: 1 of 2 (<@U01>)" in home and "Handed to <@UNEW> by <@U02>" in home
    await env.slack.open_home("UOUTSIDER")
    await settle(env)
    assert "Approvals: 1 of 2" not in json.dumps(env.slack.homes["UOUTSIDER"]["blocks"])


# ----- hand-overs never give more than their giver had (issue 24, items 1-3) -------------------------------
async def handover_rows(env: Env, run_id: str) -> list[tuple[str, str]]:
    h = handovers.c
    query = sa.select(h.by_user, h.to_user).where(h.run_id == run_id).order_by(h.at)
    return await env.db.run_transaction(lambda c: [tuple(r) for r in c.execute(query)], write=False)


def told(env: Env, user: str) -> str:
    return next(e["text"] for e in reversed(env.slack.ephemeral) if e["user"] == user)


async def pause_id(env: Env) -> str:
    return env.slack.find(ui.CONFIRM)[2].removeprefix("a:")


@pytest.mark.parametrize("name", ["selfish", "selfish2"])
async def test_nobody_hands_a_pause_to_its_starter_where_self_approval_is_forbidden(env: Env, name: str) -> None:
    run_id = await paused(env, name)  # started by U01, one of the approvers: the rules forbid them this run
    await hand_over(env, "U02", "U01")
    assert "<@U01> started this run, and its rules forbid them to answer it" in told(env, "U02")
    assert await handover_rows(env, run_id) == []
    assert not [a for a in await env.db.audit_log(run_id=run_id) if a["decision"] == "handover"]

    # Even a hand-over recorded anyway (by a bot before this rule, or by hand) gives the starter nothing.
    rid = await pause_id(env)
    row = {"requirement_id": rid, "to_user": "U01", "run_id": run_id, "by_user": "U02", "at": 1.0}
    await env.db.run_transaction(lambda c: c.execute(handovers.insert().values(**row)))
    await env.slack.click(ui.CONFIRM, user="U01")
    await settle(env)
    assert "You started this run, so someone else has to answer it." in told(env, "U01")
    await env.slack.open_home("U01")  # nor is it waiting on them in their App Home
    await settle(env)
    assert rid not in json.dumps(env.slack.homes["U01"]["blocks"])
    assert await vote_rows(env, run_id) == [] and await status(env, name, run_id) == RunStatus.PAUSED
    assert shipped == []


async def test_a_hand_over_passes_the_givers_vote_and_adds_none(env: Env) -> None:
    run_id = await paused(env, "twice")  # two approvals of U01..U20 (or two rejections)
    await hand_over(env, "U01", "UX")
    await env.slack.click(ui.CONFIRM, user="U01")  # U01's vote went to UX
    await settle(env)
    assert "You handed this pause to <@UX>: your vote is theirs now." in told(env, "U01")
    await env.slack.click(ui.CONFIRM, user="UX")
    await settle(env)
    assert "Approvals: 1 of 2 (<@UX>)" in told(env, "UX")  # U01 and UX: one voice, not 2 of 2
    assert await vote_rows(env, run_id) == [("UX", True)] and await status(env, "twice", run_id) == RunStatus.PAUSED

    await env.slack.click(ui.HANDOVER, user="U01")  # a second hand-over would pass a second vote
    await settle(env)
    assert "already: a hand-over passes your one vote" in json.dumps(env.slack.last_view())
    await env.bot.handovers.hand_over(await pause_id(env), "U01", "UY", None)  # submitted anyway
    await settle(env)
    assert "You handed this pause to <@UX> already" in told(env, "U01")
    await reject(env, "U03")  # 1 of 2 rejections
    await env.slack.click(ui.HANDOVER, user="U03")  # nor may a voter hand over: their vote is cast
    await settle(env)
    assert "You have voted on this pause" in json.dumps(env.slack.last_view())
    await env.bot.handovers.hand_over(await pause_id(env), "U03", "UZ", None)
    await settle(env)
    assert "You have voted on this pause" in told(env, "U03")
    assert await handover_rows(env, run_id) == [("U01", "UX")]
    assert await status(env, "twice", run_id) == RunStatus.PAUSED and shipped == []
    await env.slack.click(ui.CONFIRM, user="U04")
    await env.slack.until(lambda: "Completed" in json.dumps(env.card().blocks))  # UX and U04: two voices
    assert shipped == ["release-0"]
    assert await vote_rows(env, run_id) == [("UX", True), ("U03", False), ("U04", True)]


async def test_a_vote_and_a_hand_over_at_once_count_once(env: Env) -> None:
    run_id = await paused(env, "quorum")
    acted: set[str] = set()
    for by in ("U04", "U05", "U06"):
        if await status(env, "quorum", run_id) != RunStatus.PAUSED:
            break  # two votes won their races: 2 of M reached, the pause is decided
        acted.add(by)
        await env.slack.click(ui.HANDOVER, user=by)
        await settle(env)
        form = env.slack.last_view()
        handing = {"to": {"v": {"type": "users_select", "selected_user": f"UX{by}"}}, "note": {"v": {"value": ""}}}
        await asyncio.gather(env.slack.submit(form["id"], handing, user=by), env.slack.click(ui.CONFIRM, user=by))
        await settle(env)
    voted = {u for u, _ in await vote_rows(env, run_id)}
    handed = {by for by, _ in await handover_rows(env, run_id)}
    assert len(acted) >= 2 and voted | handed == acted and not voted & handed  # one voice each: a vote or a hand-over


async def test_a_person_handed_a_pause_cannot_hand_it_on(env: Env) -> None:
    run_id = await paused(env, "single")
    await hand_over(env, "U02", "UX")
    await env.slack.click(ui.HANDOVER, user="UX")
    await settle(env)
    assert "only its own approvers may hand it on" in json.dumps(env.slack.last_view())  # the form says no
    await env.bot.handovers.hand_over(await pause_id(env), "UX", "UY", None)  # a forged submission: no either
    await settle(env)
    assert "only its own approvers may hand it on" in told(env, "UX")
    assert await handover_rows(env, run_id) == [("U02", "UX")]
    await env.slack.click(ui.CONFIRM, user="UY")
    await settle(env)
    assert "may answer this" in told(env, "UY") and await status(env, "single", run_id) == RunStatus.PAUSED
    await env.slack.click(ui.CONFIRM, user="UX")  # the person it was handed to may answer it
    await env.slack.until(lambda: "Completed" in json.dumps(env.card().blocks))


async def redraws(env: Env, run_id: str) -> list[str]:
    query = sa.select(outbox.c.status).where(outbox.c.run_id == run_id, outbox.c.kind == "redraw").order_by(outbox.c.id)
    return await env.db.run_transaction(lambda c: [r[0] for r in c.execute(query)], write=False)


async def test_the_tally_is_owed_with_the_vote_and_survives_slack_failing(env: Env) -> None:
    """One pass per click (issue 25): the vote's transaction writes the redraw of the pause message it owes;
    Slack failing on it leaves it owed, and a sweep shows the tally later. The vote that decides owes none:
    the decided form shows everything."""
    run_id = await paused(env, "quorum")
    env.slack.fault("chat.update", "error", error="internal_error", times=5)
    await env.slack.click(ui.CONFIRM, user="U01")
    await settle(env)
    assert "Your approval is counted" in env.slack.ephemeral[-1]["text"]  # the vote stands; Slack failed after
    assert await redraws(env, run_id) == ["pending"] and "Approvals: 1 of 2" not in pause_message(env)
    env.slack.faults.clear()
    deadline = time.monotonic() + 10
    while "Approvals: 1 of 2 (<@U01>)" not in pause_message(env):  # once its retry is due (about a second)
        assert time.monotonic() < deadline, "the owed tally was never shown"
        await sweep_once(env.bot.runner, env.bot.registry, outbox_wait=1.0)
        await asyncio.sleep(0.2)
    assert await redraws(env, run_id) == ["done"]

    await env.slack.click(ui.CONFIRM, user="U01")  # a repeat owes nothing
    await settle(env)
    assert await redraws(env, run_id) == ["done"]
    before = len(env.slack.calls)
    await env.slack.click(ui.CONFIRM, user="U02")
    await env.slack.until(lambda: "Completed" in json.dumps(env.card().blocks))
    await settle(env)
    assert await redraws(env, run_id) == ["done"]
    pause_ts = next(m.ts for m in env.slack.messages.values() if m.thread_ts)
    to_pause = [a for m, a, _b in env.slack.calls[before:] if m == "chat.update" and a.get("ts") == pause_ts]
    assert to_pause and all("Approved by <@U02>" in json.dumps(a["blocks"]) for a in to_pause)  # decided form only


# ----- the decided message is the audit trail (issue 27) ------------------------------------------------------
async def approve_with_comment(env: Env, user: str, comment: str | None) -> dict[str, Any]:
    """ "Approve with comment…", then the form with the comment: the form it opened."""
    await env.slack.click(ui.OPEN_APPROVE, user=user)
    await settle(env)
    view = env.slack.last_view()
    await env.slack.submit(view["id"], {"text": {"v": {"type": "plain_text_input", "value": comment}}}, user=user)
    await settle(env)
    return view


def decided_blocks(env: Env, ts: str) -> str:
    return json.dumps(env.slack.messages[ts].blocks, ensure_ascii=False)


async def test_the_decided_message_keeps_every_vote_with_its_time_and_the_tally(env: Env) -> None:
    run_id = await paused(env, "twice")  # two approvals decide, or two rejections
    pause = env.slack.find(ui.CONFIRM)[0]
    form = await approve_with_comment(env, "U01", "checked the <diff>")
    assert form["title"]["text"] == "Approve: Ship" and form["submit"]["text"] == "Approve"
    assert form["blocks"][-1]["label"]["text"] == "Comment" and form["blocks"][-1]["optional"] is True
    assert "Your approval is counted. Approvals: 1 of 2 (<@U01>)" in told(env, "U01")
    await reject(env, "U03", reason="not on a Friday")
    await env.slack.click(ui.CONFIRM, user="U02")
    await env.slack.until(lambda: "Completed" in json.dumps(env.card().blocks))
    await env.slack.until(lambda: "actions" not in decided_blocks(env, pause.ts))
    kept = decided_blocks(env, pause.ts)
    assert env.slack.messages[pause.ts].blocks[0]["text"]["text"].startswith(":white_check_mark: *Approved* ·")
    first = kept.index(":white_check_mark: <@U01> approved at <!date^")
    second = kept.index(":no_entry_sign: <@U03> rejected at <!date^")
    third = kept.index(":white_check_mark: <@U02> approved at <!date^")
    assert first < second < third  # every vote, in the order cast, with its time
    assert "checked the &lt;diff&gt;" in kept and "not on a Friday" in kept  # each with its comment or reason
    assert "Approvals: 2 of 2 · Rejections: 1 of 2" in kept  # the tally
    assert "Approved by <@U02> at <!date^" in kept and "Approval needed" not in kept
    audit = [(a["actor"], a["decision"], a["note"]) for a in await env.db.audit_log(run_id=run_id)]
    assert audit == [
        ("U01", "vote_approve", "checked the <diff>"),
        ("U03", "vote_reject", "not on a Friday"),
        ("U02", "vote_approve", None),
        ("U02", "confirm", None),
    ]


async def test_a_hand_over_and_a_comment_stay_on_the_decided_message(env: Env) -> None:
    run_id = await paused(env, "single")
    pause = env.slack.find(ui.CONFIRM)[0]
    await hand_over(env, "U02", "UNEW", note="you know this release")
    await approve_with_comment(env, "UNEW", "ship it <now>")
    await env.slack.until(lambda: "Completed" in json.dumps(env.card().blocks))
    await env.slack.until(lambda: "actions" not in decided_blocks(env, pause.ts))
    kept = decided_blocks(env, pause.ts)
    assert ":busts_in_silhouette: Handed to <@UNEW> by <@U02> at <!date^" in kept  # the hand-over stays
    assert "*Comment*\\n" in kept and "ship it &lt;now&gt;" in kept
    assert kept.count("Approved by <@UNEW> at <!date^") == 1 and "Approval needed" not in kept
    audit = [(a["actor"], a["decision"], a["note"]) for a in await env.db.audit_log(run_id=run_id)]
    assert audit == [("U02", "handover", "you know this release"), ("UNEW", "confirm", "ship it <now>")]


async def test_a_reason_with_a_rejection_is_in_the_audit_log_and_on_the_message(env: Env) -> None:
    run_id = await paused(env, "single")
    pause = env.slack.find(ui.CONFIRM)[0]
    form = await open_reject(env, "U02")
    assert form["title"]["text"] == "Reject: Ship" and form["blocks"][-1]["label"]["text"] == "Reason"
    assert form["blocks"][-1]["optional"] is True and form["submit"]["text"] == "Reject"
    await env.slack.submit(
        form["id"], {"text": {"v": {"type": "plain_text_input", "value": "wait for <freeze>"}}}, user="U02"
    )
    await env.slack.until(lambda: "actions" not in decided_blocks(env, pause.ts))
    kept = decided_blocks(env, pause.ts)
    assert env.slack.messages[pause.ts].blocks[0]["text"]["text"].startswith(":no_entry_sign: *Rejected: step skipped*")
    assert "*Reason*\\n" in kept and "wait for &lt;freeze&gt;" in kept and "Rejected by <@U02> at <!date^" in kept
    assert shipped == [] and await status(env, "single", run_id) == RunStatus.COMPLETED
    audit = [(a["actor"], a["decision"], a["note"]) for a in await env.db.audit_log(run_id=run_id)]
    assert audit == [("U02", "reject", "wait for <freeze>")]


async def test_a_comment_or_reason_goes_through_the_same_rules(env: Env) -> None:
    run_id = await paused(env, "selfish")  # started by U01, whom the rules forbid to answer it
    await env.slack.click(ui.OPEN_APPROVE, user="UOUTSIDER")
    await settle(env)
    assert "may answer this" in json.dumps(env.slack.last_view())  # the form says no instead
    await env.slack.click(ui.OPEN_APPROVE, user="U02")
    await settle(env)
    form = env.slack.last_view()
    comment = {"text": {"v": {"type": "plain_text_input", "value": "mine"}}}
    for forger in ("UOUTSIDER", "U01"):  # a form submitted by someone else is checked again
        await env.slack.submit(form["id"], comment, user=forger)
        await settle(env)
    assert "may answer this" in told(env, "UOUTSIDER") and "someone else has to answer it" in told(env, "U01")
    assert await status(env, "selfish", run_id) == RunStatus.PAUSED and shipped == []
    assert await env.db.audit_log(run_id=run_id) == []
