"""Real `kern-bot serve` processes killed with SIGKILL: a new process takes the run over and catches its
Slack messages up. On SQLite and PostgreSQL, with the local Slack stand-in.

1. Killed mid-step: the run is taken over after its lease expires; the step in flight runs again,
   completed steps do not, every pause is posted once.
2. Killed after the pause was committed but before its message reached Slack: the next process posts it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot import blocks as ui
from bot.devslack import DevSlack
from bot.registry import BotWorkflow
from kern.workflow import Step, Workflow
from tests.conftest import PG_URL, free_port, require_postgres, unique
from tests.test_bot_e2e import SECRET

ROOT = Path(__file__).resolve().parent.parent


def _log(what: str) -> None:
    with open(os.environ["CRASH_LOG"], "a") as f:
        f.write(what + "\n")


def _first(step_input: Any) -> str:
    _log("first")
    return "first done"


def _slow(step_input: Any) -> str:
    """Holds while the hold file exists (the test kills the process meanwhile)."""
    _log("slow-start")
    hold = Path(os.environ["CRASH_HOLD"])
    while hold.exists():
        time.sleep(0.02)
    _log("slow-end")
    return f"slow after {step_input.previous_step_content}"


def _last(step_input: Any) -> str:
    _log("last")
    return f"last after {step_input.previous_step_content}"


def crash_flows() -> list[BotWorkflow]:
    """Built in each bot process (KERN_WORKFLOWS=tests.test_bot_recovery:crash_flows)."""
    workflow = Workflow(
        name=os.environ["CRASH_FLOW_NAME"],
        steps=[
            Step(name="first", executor=_first),
            Step(name="slow", executor=_slow),
            Step(name="check", executor=_last, requires_confirmation=True),
        ],
    )
    return [BotWorkflow(workflow, name="crash")]


class Bots:
    """`kern-bot serve` processes on one database and one local Slack, started and killed at will."""

    def __init__(self, slack: DevSlack, db_url: str, tmp: Path) -> None:
        self.slack = slack
        self.log = tmp / "steps.log"
        self.hold = tmp / "hold"
        self.env = {
            **os.environ,
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.api_url,
            "KERN_DB": db_url,
            "KERN_LEASE_SECONDS": "1",
            "KERN_WORKFLOWS": "tests.test_bot_recovery:crash_flows",
            "CRASH_FLOW_NAME": unique("crash"),
            "CRASH_LOG": str(self.log),
            "CRASH_HOLD": str(self.hold),
            "PYTHONPATH": str(ROOT),
        }
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, port: int) -> None:
        command = [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
        self.procs.append(
            subprocess.Popen(
                [*command, "--sweep-interval", "0.2"],
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    async def start(self, port: int) -> str:
        """A new `kern-bot serve` on `port`, once it answers; Slack now calls it."""
        self.spawn(port)
        async with aiohttp.ClientSession() as session:
            for _ in range(400):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/health") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("kern-bot serve did not start")
        url = f"http://127.0.0.1:{port}/slack/events"
        self.slack.bot_endpoint = url
        return url

    def kill(self) -> None:
        proc = self.procs[-1]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def steps(self) -> list[str]:
        return self.log.read_text().split() if self.log.exists() else []

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgres":
        require_postgres()
        yield PG_URL
    else:
        yield str(tmp_path / "kern.db")


def _ports() -> tuple[int, int]:
    first = free_port()
    return first, next(port for port in iter(free_port, None) if port != first)


def card(slack: DevSlack) -> str:
    return json.dumps(next(m for m in slack.messages.values() if m.thread_ts is None).blocks)


def pause_messages(slack: DevSlack) -> list[Any]:
    return [m for m in slack.messages.values() if m.thread_ts and (m.metadata or {}).get("event_type") == "kern_pause"]


async def test_a_killed_process_run_is_taken_over(db_url: str, tmp_path: Path) -> None:
    async with DevSlack(SECRET) as slack:
        bots = Bots(slack, db_url, tmp_path)
        first, second = _ports()
        try:
            bots.hold.touch()
            await bots.start(first)
            await slack.command("run crash")
            await slack.until(lambda: bots.steps() == ["first", "slow-start"], within=20)
            bots.kill()  # SIGKILL in the middle of step "slow"
            bots.hold.unlink()
            await bots.start(second)  # a new process: its sweep takes the run over once the lease expired
            await slack.until(lambda: len(pause_messages(slack)) == 1, within=20)
            await slack.until(lambda: "Waiting: check" in card(slack))
            assert bots.steps() == ["first", "slow-start", "slow-start", "slow-end"]
            await slack.click(ui.CONFIRM)
            await slack.until(lambda: "Completed" in card(slack), within=20)
            assert "last after slow after first done" in card(slack)
            assert bots.steps() == ["first", "slow-start", "slow-start", "slow-end", "last"]
            assert len(pause_messages(slack)) == 1
        finally:
            bots.stop_all()


async def test_killed_between_the_pause_and_its_message(db_url: str, tmp_path: Path) -> None:
    async with DevSlack(SECRET) as slack:
        bots = Bots(slack, db_url, tmp_path)
        first, second = _ports()
        try:
            bots.hold.touch()
            await bots.start(first)
            await slack.command("run crash")
            await slack.until(lambda: bots.steps() == ["first", "slow-start"], within=20)
            slack.swallow_next["chat.postMessage"] = 1  # the pause message never reaches Slack...
            bots.hold.unlink()
            await slack.until(lambda: bool(slack.swallowed), within=20)
            bots.kill()  # ...and the process dies waiting for it: the run is PAUSED, its message only owed
            assert pause_messages(slack) == []
            await bots.start(second)
            await slack.until(lambda: len(pause_messages(slack)) == 1, within=20)
            await slack.until(lambda: "Waiting: check" in card(slack))
            assert bots.steps() == ["first", "slow-start", "slow-end"]  # nothing ran again
            await slack.click(ui.CONFIRM)
            await slack.until(lambda: "Completed" in card(slack), within=20)
            assert len(pause_messages(slack)) == 1
        finally:
            bots.stop_all()


async def test_killed_after_slack_posted_the_pause_but_before_its_answer(db_url: str, tmp_path: Path) -> None:
    """Slack posted the pause message and its answer was lost with the process: the next process finds the
    post by its metadata (conversations.replies with include_all_metadata) and adopts it, not posting again."""
    async with DevSlack(SECRET) as slack:
        bots = Bots(slack, db_url, tmp_path)
        first, second = _ports()
        try:
            bots.hold.touch()
            await bots.start(first)
            await slack.command("run crash")
            await slack.until(lambda: bots.steps() == ["first", "slow-start"], within=20)
            slack.fault("chat.postMessage", "lose")  # the pause message is posted, its answer never comes...
            bots.hold.unlink()
            await slack.until(lambda: bool(slack.lost), within=20)
            bots.kill()  # ...and the process dies waiting for it: Slack shows the message, nobody recorded it
            assert len(pause_messages(slack)) == 1
            await bots.start(second)
            await slack.until(lambda: "Waiting: check" in card(slack), within=20)
            await slack.until(lambda: any(c[0] == "conversations.replies" for c in slack.calls), within=20)
            await slack.click(ui.CONFIRM)  # the adopted message is the pause's: a click on it decides it
            await slack.until(lambda: "Completed" in card(slack), within=20)
            assert len(pause_messages(slack)) == 1 and "*Approved*" in json.dumps(pause_messages(slack)[0].blocks)
            assert bots.steps() == ["first", "slow-start", "slow-end", "last"]
        finally:
            bots.stop_all()
