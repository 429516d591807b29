"""The App Home at scale (issue 24, item 28), on SQLite and PostgreSQL, through the stand-in that validates
as Slack does: with 10,000 open pauses each person's Home counts exactly the pauses waiting on them and
shows their own however many others wait, within Slack's 100 blocks ("...and N more"); with several
standing approvals it still publishes (Slack asks an action_id to be unique in its block, not the view)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot import blocks as ui
from bot.devslack import DevSlack
from bot.devslack.validate import validate_blocks
from bot.migrations import BOT
from bot.policy import Approvers
from bot.registry import BotWorkflow, Registry
from bot.tables import cards, grants, handovers, pauses
from kern.db.schema import runs
from kern.workflow import Step, Workflow
from tests.conftest import make_db, unique
from tests.test_bot_access import forget_home_viewers
from tests.test_bot_e2e import SECRET, Env, run_id_of_card, settle, start_bot

OPEN_PAUSES = 10_000
OWN = 3  # UAPP's own pauses, older than all the others


def confirm(name: str, *steps: str) -> Workflow:
    return Workflow(
        name=unique(name),
        steps=[Step(name=s, executor=lambda i, s=s: f"{s} done", requires_confirmation=True) for s in steps],
    )


def flows() -> list[BotWorkflow]:
    """Command names of their own: the shared PostgreSQL database keeps every test run's rows."""
    return [
        BotWorkflow(confirm("mine", "deploy"), name=unique("mine"), approvers=Approvers(users=("UAPP",))),
        BotWorkflow(confirm("theirs", "deploy"), name=unique("theirs"), approvers=Approvers(users=("UOTHER",))),
        # per-step rules: the Home reads each pause's step (in SQL, from the stored run)
        BotWorkflow(
            confirm("steps", "plan", "prod"),
            name=unique("steps"),
            approvers=Approvers(users=("UOTHER",)),
            step_approvers={"plan": Approvers(users=("UAPP",))},
        ),
    ]


def named(env: Env, stem: str) -> str:
    """The command name of the workflow `stem` in this test's registry."""
    return next(name for name in env.bot.registry.entries if name.startswith(stem + "-"))


@pytest.fixture
async def env(db_kind: str, tmp_path: Path) -> AsyncIterator[Env]:
    db = make_db(db_kind, tmp_path)
    async with DevSlack(SECRET) as slack:
        bot, server, endpoint = await start_bot(slack, Registry(flows(), db))
        slack.bot_endpoint = endpoint
        try:
            yield Env(slack, bot, db)
        finally:
            await bot.background.idle(10)
            await server.cleanup()
            cloned, CLONED[:] = list(CLONED), []

            def forget(conn: Connection) -> None:  # the shared PostgreSQL database keeps rows between runs
                for table in (handovers, pauses, cards, runs):
                    for at in range(0, len(cloned), 1000):
                        conn.execute(table.delete().where(table.c.run_id.in_(cloned[at : at + 1000])))

            if cloned:
                await db.run_transaction(forget, tables=BOT)
            await forget_home_viewers(db, slack.homes)


async def paused_run(env: Env, workflow: str) -> str:
    await env.slack.command(f"run {named(env, workflow)}", user="U1")
    await settle(env)
    await env.slack.until(lambda: "Waiting:" in json.dumps(env.card().blocks))
    return await run_id_of_card(env)


CLONED: list[str] = []  # run ids, removed after the test


async def clone(env: Env, run_id: str, copies: int, posted_from: float) -> list[str]:
    """`copies` more runs paused as `run_id` is (kern's run row, the card, the open pause: each with ids of
    its own), their pauses posted one second apart from `posted_from`; their requirement ids."""
    db = env.db
    row = await db.run_transaction(
        lambda c: c.execute(sa.select(runs).where(runs.c.run_id == run_id)).mappings().one(), write=False
    )
    card = await db.run_transaction(
        lambda c: c.execute(sa.select(cards).where(cards.c.run_id == run_id)).mappings().one(), write=False, tables=BOT
    )
    output = db.read_json(row["output"]) if isinstance(row["output"], str) else row["output"]
    old_rid = row["requirement_id"]
    text = json.dumps(output)
    run_rows, card_rows, pause_rows, rids = [], [], [], []
    for i in range(copies):
        new_run, new_rid = uuid.uuid4().hex, uuid.uuid4().hex
        rids.append(new_rid)
        CLONED.append(new_run)
        copied = json.loads(text.replace(run_id, new_run).replace(old_rid, new_rid))
        run_rows.append(
            {**{k: v for k, v in row.items() if k != "seq"}, "run_id": new_run, "requirement_id": new_rid}
            | {"output": copied, "session_id": uuid.uuid4().hex}
        )
        card_rows.append({**card, "run_id": new_run, "ts": f"9{i}.{i}", "started_by": "UCLONES"})
        pause_rows.append(
            {
                "requirement_id": new_rid,
                "run_id": new_run,
                "channel": card["channel"],
                "ts": f"8{i}.{i}",
                "status": "open",
                "posted_at": posted_from + i,
                "team_id": card["team_id"],
            }
        )

    def body(conn: Connection) -> None:
        conn.execute(runs.insert(), run_rows)
        conn.execute(cards.insert(), card_rows)
        conn.execute(pauses.insert(), pause_rows)

    await db.run_transaction(body, tables=BOT)
    return rids


def text_of(view: dict[str, Any]) -> str:
    return json.dumps(view["blocks"])


def shown_pauses(view: dict[str, Any]) -> set[str]:
    """The requirement ids behind the Approve buttons of a Home."""
    return {
        el["value"]
        for b in view["blocks"]
        if b["type"] == "actions"
        for el in b["elements"]
        if el["action_id"].startswith(ui.CONFIRM)
    }


async def test_ten_thousand_open_pauses(env: Env, db_kind: str) -> None:
    home = env.bot.home
    assert home is not None
    long_ago = time.time() - 10 * 86_400
    own = await clone(env, await paused_run(env, "mine"), OWN, long_ago)  # the oldest of all
    planned = await clone(env, await paused_run(env, "steps"), 2, long_ago + 100)  # at `plan`: UAPP's too
    theirs = OPEN_PAUSES - OWN - 2 - 3  # the three real runs count too
    handed = (await clone(env, await paused_run(env, "theirs"), theirs, long_ago + 1_000))[0]  # their oldest

    def hand_over(conn: Connection) -> None:  # UOTHER handed it to UAPP: it waits on UAPP too
        run_id = conn.execute(sa.select(pauses.c.run_id).where(pauses.c.requirement_id == handed)).scalar_one()
        row = {"requirement_id": handed, "to_user": "UAPP", "run_id": run_id, "by_user": "UOTHER", "at": time.time()}
        conn.execute(handovers.insert().values(**row, team_id=""))

    await env.db.run_transaction(hand_over, tables=BOT)

    started = time.perf_counter()
    await home.show("UOTHER")
    took_first = time.perf_counter() - started  # statements compiled, connections warmed
    started = time.perf_counter()
    await home.show("UOTHER")
    took_others = time.perf_counter() - started
    view = env.slack.homes["UOTHER"]
    assert len(view["blocks"]) <= 100 and validate_blocks(view["blocks"], modal=True) == []
    waiting_on_other = theirs + 1  # the real `theirs` run; `steps` at `plan` is UAPP's
    assert f"{waiting_on_other} pauses wait on you" in text_of(view)
    shown = len(shown_pauses(view))
    assert f"...and {waiting_on_other - shown} more" in text_of(view) and f"Showing 1-{shown}." in text_of(view)

    started = time.perf_counter()
    await home.show("UAPP")
    took_own = time.perf_counter() - started
    view = env.slack.homes["UAPP"]
    # the clones, the real `mine`, `steps` at plan, and the one handed over
    assert f"{OWN + 1 + 2 + 1 + 1} pauses wait on you" in text_of(view)
    assert set(own) | set(planned) | {handed} <= shown_pauses(view)  # older than 9,990 others, shown all the same
    assert "more: *Next*" not in text_of(view)
    print(
        f"\nApp Home build at {OPEN_PAUSES} open pauses on {db_kind}: {took_others:.3f} s (a window of many; "
        f"{took_first:.3f} s the first time), {took_own:.3f} s (seven of their own)"
    )
    assert took_others < 30 and took_own < 30  # a bound for a loaded machine; the numbers are in the report
    assert env.errors() == []


async def test_a_home_with_several_standing_approvals_publishes(env: Env) -> None:
    """Each standing approval has its own Revoke button, all named `kern:grant_revoke`, each in its own
    section: Slack accepts that (unique within the containing block), and so does the stand-in."""
    mine = named(env, "mine")
    now = time.time()
    ids = [uuid.uuid4().hex[:32] for _ in range(7)]

    def body(conn: Connection) -> None:
        conn.execute(
            grants.insert(),
            [
                {
                    "id": grant_id,
                    "scope": "workflow",
                    "workflow": mine,
                    "run_id": None,
                    "tool_name": f"deploy{n}",
                    "granted_by": "UAPP",
                    "granted_at": now + n,
                    "expires_at": now + 3_600,
                    "team_id": "",
                }
                for n, grant_id in enumerate(ids)
            ],
        )

    await env.db.run_transaction(body, tables=BOT)
    await env.slack.open_home("UAPP")
    await settle(env)
    await env.slack.until(lambda: "Standing approvals" in text_of(env.slack.homes.get("UAPP", {"blocks": []})))
    view = env.slack.homes["UAPP"]
    revokes = [
        b["accessory"]["value"] for b in view["blocks"] if b.get("accessory", {}).get("action_id") == ui.GRANT_REVOKE
    ]
    assert revokes == ids[::-1][:5]  # newest first, five of them
    assert "...and 2 more standing approvals" in text_of(view)
    assert [r for r in env.slack.rejected if r["method"] == "views.publish"] == []
    await env.slack.home_click("UAPP", ui.GRANT_REVOKE, value=ids[3])  # the second of the buttons
    await settle(env)
    await env.slack.until(lambda: ids[3] not in text_of(env.slack.homes["UAPP"]))
    assert "...and 1 more standing approvals" in text_of(env.slack.homes["UAPP"])


def test_the_stand_in_checks_action_ids_per_block() -> None:
    """https://docs.slack.dev/reference/block-kit/block-elements/button-element: an action_id "should be
    unique among all other action_ids in the containing block"; block_ids are unique in the view."""

    def button(action_id: str) -> dict[str, Any]:
        return {"type": "button", "text": {"type": "plain_text", "text": "x"}, "action_id": action_id}

    def section(action_id: str) -> dict[str, Any]:
        return {"type": "section", "text": {"type": "mrkdwn", "text": "x"}, "accessory": button(action_id)}

    assert validate_blocks([section("a"), section("a")], modal=True) == []
    assert validate_blocks([{"type": "actions", "elements": [button("a")]}] * 2, modal=True) == []
    same_block = validate_blocks([{"type": "actions", "elements": [button("a"), button("a")]}], modal=True)
    assert same_block == ["duplicate action_id a [json-pointer:/blocks/0/elements/1]"]
    twice = {"type": "actions", "block_id": "b", "elements": [button("a")]}
    assert validate_blocks([twice, twice], modal=True) == [
        "block_id too long or duplicated [json-pointer:/blocks/1/block_id]"
    ]
