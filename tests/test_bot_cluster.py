"""Two bot servers on one database, a restart with a pending deadline, and tool-call approval cards."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from bot import blocks as ui
from bot.devslack import DevSlack
from bot.registry import BotWorkflow, Registry
from bot.runs.sweeper import sweep_once
from kern.agent import Agent
from kern.models.openai import OpenAIChat
from kern.tools import tool
from kern.workflow import OnTimeout, Step, Workflow
from tests.conftest import PG_URL, make_db, require_postgres, unique
from tests.openai_stub import FakeOpenAI, Reply, calls, text
from tests.test_bot_e2e import SECRET, start_bot

ROOT = Path(__file__).resolve().parent.parent


def timed_registry(db, name: str) -> Registry:
    wf = Workflow(
        name=name,
        steps=[
            Step(name="one", executor=lambda s: "one done", requires_confirmation=True),
            Step(
                name="two",
                executor=lambda s: "two done",
                requires_confirmation=True,
                hitl_timeout=30,
                on_timeout=OnTimeout.approve,
            ),
        ],
    )
    return Registry([BotWorkflow(wf, name="timed2")], db)


async def test_two_bot_processes_on_one_postgres(tmp_path: Path) -> None:
    require_postgres()
    name = unique("cluster")
    async with DevSlack(SECRET) as slack:
        bot_a, server_a, url_a = await start_bot(slack, timed_registry(make_db("postgres", tmp_path), name))
        bot_b, server_b, url_b = await start_bot(slack, timed_registry(make_db("postgres", tmp_path), name))
        try:
            slack.bot_endpoint = url_a
            await slack.command("run timed2")
            await slack.until(lambda: any("Approval needed" in json.dumps(m.blocks) for m in slack.messages.values()))
            slack.bot_endpoint = url_b  # the click lands on the other replica
            await slack.click(ui.CONFIRM, user="U2")
            await slack.until(
                lambda: "it is approved automatically" in json.dumps(list(slack.messages.values())[-1].blocks)
            )
            later = time.time() + 60
            moved = await asyncio.gather(
                sweep_once(bot_a.runner, bot_a.registry, now=later), sweep_once(bot_b.runner, bot_b.registry, now=later)
            )
            assert sorted(moved) == [0, 1]  # exactly one replica applied the deadline
            await bot_a.background.idle()
            await bot_b.background.idle()
            card = next(m for m in slack.messages.values() if m.thread_ts is None)
            assert "two done" in json.dumps(card.blocks)
            decided = [
                m for m in slack.messages.values() if "Timed out: approved automatically" in json.dumps(m.blocks)
            ]
            assert len(decided) == 1
        finally:
            await server_a.cleanup()
            await server_b.cleanup()


@pytest.mark.parametrize("db_kind", ["sqlite", "postgres"])
async def test_restart_with_a_pending_deadline(db_kind: str, tmp_path: Path) -> None:
    name = unique("restart")
    async with DevSlack(SECRET) as slack:
        bot, server, url = await start_bot(slack, timed_registry(make_db(db_kind, tmp_path), name))
        slack.bot_endpoint = url
        await slack.command("run timed2")
        await slack.until(
            lambda: slack.messages and "Approval needed" in json.dumps(list(slack.messages.values())[-1].blocks)
        )
        await slack.click(ui.CONFIRM)
        await slack.until(lambda: "approved automatically" in json.dumps(list(slack.messages.values())[-1].blocks))
        await bot.background.idle()
        await server.cleanup()  # the bot process goes away with a deadline pending
        fresh, server2, _url2 = await start_bot(slack, timed_registry(make_db(db_kind, tmp_path), name))
        try:
            assert await sweep_once(fresh.runner, fresh.registry, now=time.time() + 60) == 1
            await fresh.background.idle()
            card = next(m for m in slack.messages.values() if m.thread_ts is None)
            assert "two done" in json.dumps(card.blocks) and "Completed" in json.dumps(card.blocks)
        finally:
            await server2.cleanup()


sent: list[str] = []


@tool(requires_confirmation=True)
def deploy(service: str, env: str) -> str:
    """Deploy a service."""
    sent.append(service)
    return f"deployed {service} to {env}"


@tool(requires_user_input=True, user_input_fields=["ticket"])
def open_change(summary: str, ticket: str) -> str:
    """Open a change request."""
    return f"change {ticket}: {summary}"


@tool(external_execution=True)
def run_migration(version: str) -> str:
    """Run a database migration (done by a person)."""
    raise AssertionError("external")


@pytest.fixture(scope="module")
def model_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


async def test_tool_call_cards(db_kind: str, tmp_path: Path, model_server: FakeOpenAI) -> None:
    sent.clear()

    def final(body: dict) -> Reply:
        results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
        return text(" | ".join(results))

    model_server.script(
        calls(
            ("deploy", {"service": "api <v2>", "env": "prod & eu"}),
            ("open_change", {"summary": "ship *it*"}),
            ("run_migration", {"version": "42"}),
        ),
        final,
    )
    db = make_db(db_kind, tmp_path)
    agent = Agent(
        name="Deployer",
        model=OpenAIChat(id="m", base_url=model_server.base_url, api_key="t"),
        tools=[deploy, open_change, run_migration],
        db=db,
    )
    wf = Workflow(name=unique("agentic"), steps=[Step(name="ship", agent=agent)])
    async with DevSlack(SECRET) as slack:
        bot, server, url = await start_bot(slack, Registry([BotWorkflow(wf, name="ship")], db))
        slack.bot_endpoint = url
        try:
            await slack.command("run ship api")
            await slack.until(
                lambda: any("Tool call needs approval" in json.dumps(m.blocks) for m in slack.messages.values())
            )
            card_json = json.dumps(list(slack.messages.values())[-1].blocks)
            assert "wants to call `deploy`" in card_json and "api &lt;v2&gt;" in card_json
            await slack.click(ui.TOOL_OK, user="U2")
            await bot.background.idle()
            assert "Approved by <@U2>" in json.dumps(list(slack.messages.values())[-1].blocks)
            await slack.click(ui.TOOL_INPUT, user="U2")
            await bot.background.idle()
            view = slack.last_view()
            assert [b["label"]["text"] for b in view["blocks"] if b["type"] == "input"] == ["Ticket"]
            await slack.submit(view["id"], {"f0": {"v": {"type": "plain_text_input", "value": "CHG-7"}}}, user="U2")
            await bot.background.idle()
            await slack.click(ui.TOOL_RESULT, user="U3")
            await bot.background.idle()
            result_view = slack.last_view()
            await slack.submit(
                result_view["id"], {"text": {"v": {"type": "plain_text_input", "value": "migrated"}}}, user="U3"
            )
            await bot.background.idle()
            card = next(m for m in slack.messages.values() if m.thread_ts is None)
            assert "deployed api &lt;v2&gt; to prod &amp; eu | change CHG-7: ship *it* | migrated" in json.dumps(
                card.blocks
            )
            assert sent == ["api <v2>"]
            assert [c for c in slack.calls if not c[2].get("ok")] == []
        finally:
            await bot.background.idle()
            await server.cleanup()


TWO_PROCESS_FLOWS = [
    BotWorkflow(
        Workflow(
            name="two-process-flow",
            steps=[
                Step(name="first", executor=lambda s: "first done", requires_confirmation=True),
                Step(
                    name="second",
                    executor=lambda s: f"second after {s.previous_step_content}",
                    requires_confirmation=True,
                ),
            ],
        ),
        name="flow",
    )
]


def _start_bot_processes(slack: DevSlack, db_url: str, ports: list[int]) -> list[subprocess.Popen[bytes]]:
    """`kern-bot serve` processes on `ports`, all on one database and one (local) Slack."""
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.api_url,
        "KERN_DB": db_url,
        "PYTHONPATH": str(ROOT),
        "KERN_WORKFLOWS": "tests.test_bot_cluster:TWO_PROCESS_FLOWS",
    }
    command = [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--sweep-interval", "0", "--port"]
    return [
        subprocess.Popen([*command, str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for port in ports
    ]


async def test_two_real_bot_processes_share_one_postgres(tmp_path: Path) -> None:
    require_postgres()
    async with DevSlack(SECRET) as slack:
        ports = [3900 + (os.getpid() + i) % 90 for i in (0, 1)]
        procs = _start_bot_processes(slack, PG_URL, ports)
        try:
            async with aiohttp.ClientSession() as session:
                for port, proc in zip(ports, procs, strict=True):
                    # a loaded 2-core machine (CI beside other jobs) can take many seconds to import
                    deadline = time.monotonic() + 90
                    while True:
                        assert proc.poll() is None, f"bot process on port {port} exited with {proc.returncode}"
                        try:
                            async with session.get(f"http://127.0.0.1:{port}/health") as resp:
                                if resp.status == 200:
                                    break
                        except aiohttp.ClientError:
                            pass
                        assert time.monotonic() < deadline, f"bot process on port {port} did not come up in 90 s"
                        await asyncio.sleep(0.05)
            urls = [f"http://127.0.0.1:{p}/slack/events" for p in ports]
            slack.bot_endpoint = urls[0]
            await slack.command("run flow")
            await slack.until(lambda: any(m.thread_ts and "first" in m.text for m in slack.messages.values()))
            first = slack.find(ui.CONFIRM)
            # both replicas receive a click on the same pause at once: one run resumes, once
            slack.bot_endpoint = urls[1]
            other = asyncio.ensure_future(slack.click(ui.CONFIRM, user="U2", stale=first))
            slack.bot_endpoint = urls[0]
            mine = asyncio.ensure_future(slack.click(ui.CONFIRM, user="U3", stale=first))
            await asyncio.gather(other, mine)
            await slack.until(lambda: any(m.thread_ts and "second" in m.text for m in slack.messages.values()))
            await slack.until(lambda: any(e["text"].startswith("Already approved by") for e in slack.ephemeral))
            slack.bot_endpoint = urls[1]  # the next pause is answered through the other process
            await slack.click(ui.CONFIRM, user="U4")
            await slack.until(
                lambda: (
                    "Completed" in json.dumps(next(m for m in slack.messages.values() if m.thread_ts is None).blocks)
                )
            )
            card = next(m for m in slack.messages.values() if m.thread_ts is None)
            assert "second after first done" in json.dumps(card.blocks)
            assert sum(1 for m in slack.messages.values() if m.thread_ts and "second" in m.text) == 1
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
