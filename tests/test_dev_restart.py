"""`kern-bot dev` as a newcomer runs it (a real process, no OPENAI_BASE_URL): the agent example runs on
the scripted model and shows its tool-call card; after a restart the page still shows the channel and
the DMs, and runs paused before the restart are answered from them. The channel file is kept atomically and a broken
one is set aside, never fatal."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from bot import blocks as ui
from bot.devslack import persist
from bot.devslack.slack import Message

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dev:
    """One `kern-bot dev` process on free ports, its database in `tmp`."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port, self.bot_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "dev.log"

    def spawn(self) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "KERN_WORKFLOWS")}
        env.update(KERN_DB=str(self.tmp / "kern.db"), PYTHONPATH=str(ROOT), KERN_OPS_PORT="0")
        command = [sys.executable, "-m", "bot.cli", "dev", "--port", str(self.port), "--bot-port", str(self.bot_port)]
        with open(self.log, "ab") as log:
            return subprocess.Popen(command, cwd=self.tmp, env=env, stdout=log, stderr=subprocess.STDOUT)

    async def __aenter__(self) -> Dev:
        self.http = aiohttp.ClientSession()
        for _attempt in range(3):  # a free port can be taken by another process before the child binds it
            # The log is shared by every process of the test: only this one's lines say it is up.
            self.log_from = self.log.stat().st_size if self.log.exists() else 0
            self.proc = await asyncio.to_thread(self.spawn)
            if await self._ready():
                return self
            self.port, self.bot_port = free_port(), free_port()
            self.url = f"http://127.0.0.1:{self.port}"
        raise AssertionError(self.log.read_text())

    async def _ready(self) -> bool:
        """True once the page answers and the process has said it is up (the page answers before the
        bot is started); False if the process exited because a port was taken."""
        deadline = time.monotonic() + 60  # a loaded 2-core machine can take a while to import
        while True:
            if self.proc.poll() is not None:
                assert "address already in use" in self.log.read_text().lower(), self.log.read_text()
                return False
            try:
                async with self.http.get(f"{self.url}/ui/state?user=U1") as resp:
                    if resp.status == 200 and b"Ctrl-C stops" in self.log.read_bytes()[self.log_from :]:
                        return True
            except aiohttp.ClientError:
                pass
            assert time.monotonic() < deadline, self.log.read_text()
            await asyncio.sleep(0.2)

    async def __aexit__(self, *exc: object) -> None:
        await self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # as Ctrl-C would: the channel file gets its last write
            assert await asyncio.to_thread(self.proc.wait, 30) == 0, self.log.read_text()

    async def state(self, user: str = "U1") -> dict[str, Any]:
        async with self.http.get(f"{self.url}/ui/state?user={user}") as resp:
            return await resp.json()

    async def until(self, predicate: Any, within: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            state = await self.state()
            if predicate(state):
                return state
            assert time.monotonic() < deadline, json.dumps(state)[:3000]
            await asyncio.sleep(0.1)

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.http.post(self.url + path, json={"user": "U1", **body}) as resp:
            return await resp.json()


def text_of(state: dict[str, Any]) -> str:
    return json.dumps(state["messages"])


def button(state: dict[str, Any], action_id: str) -> tuple[str, str]:
    """(message ts, action_id) of the newest button whose action_id starts with `action_id`."""
    for message in reversed([r for m in state["messages"] for r in [m, *m["replies"]]]):
        for block in message["blocks"]:
            for element in block.get("elements", []) if block["type"] == "actions" else []:
                if element["action_id"].split(":")[:2] == action_id.split(":")[:2]:
                    return message["ts"], element["action_id"]
    raise LookupError(action_id)


async def test_scripted_agent_and_a_restart_lose_nothing(tmp_path: Path) -> None:
    async with Dev(tmp_path) as dev:
        assert "scripted model" in (tmp_path / "dev.log").read_text()
        assert "scripted model" in (await dev.state())["notice"]  # the page says so under the channel name
        await dev.post("/ui/command", {"text": "/kern list"})
        listed = await dev.until(lambda s: s["ephemeral"])
        assert "`alert`" in listed["ephemeral"][-1]["text"] and "scripted model" in listed["ephemeral"][-1]["text"]
        await dev.post("/ui/command", {"text": "/kern run alert Warn Osaka about heavy rain"})
        state = await dev.until(lambda s: "Let the agent send an alert?" in text_of(s))
        await dev.post("/ui/click", dict(zip(("ts", "action_id"), button(state, ui.CONFIRM), strict=True)))
        state = await dev.until(lambda s: "wants to call" in text_of(s))  # the tool-call card
        assert "send_alert" in text_of(state) and "Osaka" in text_of(state)
        await dev.post("/ui/command", {"text": "/kern run deploy api"})
        await dev.until(lambda s: "Deploy to production?" in text_of(s))
        await dev.post("/ui/command", {"text": "/kern run purchase a chair"})  # DM'd to U1 and UBOSS
        await dev.until(lambda s: s["dm"] and "Approve this purchase?" in text_of(s))
        before, boss = await dev.state(), await dev.state("UBOSS")
    kept = persist.load(tmp_path / "kern.db.devslack.json")  # written at the latest on the way out
    dms = {m["ts"] for m in before["dm"] + boss["dm"]}
    assert set(kept) == {r["ts"] for m in before["messages"] for r in [m, *m["replies"]]} | dms

    async with Dev(tmp_path) as dev:  # a new process: the page shows the channel as it was
        state = await dev.state()
        assert state["messages"] == before["messages"] and state["dm"] == before["dm"]  # the DM too
        await dev.post("/ui/click", {"ts": state["dm"][0]["ts"], "action_id": ui.CONFIRM})  # answered in the DM
        state = await dev.until(lambda s: "Ordered a chair." in text_of(s))
        assert "Approved by <@U1>" in json.dumps(state["dm"]) and ui.CONFIRM not in json.dumps(state["dm"])
        await dev.post("/ui/click", dict(zip(("ts", "action_id"), button(state, ui.TOOL_OK), strict=True)))
        state = await dev.until(lambda s: "Done (scripted model): Alert sent for Osaka" in text_of(s))
        await dev.post("/ui/click", dict(zip(("ts", "action_id"), button(state, ui.CONFIRM), strict=True)))
        state = await dev.until(lambda s: "Deployed api" in text_of(s))
        assert text_of(state).count("Completed") >= 2
        assert state["rejected"] == []


def test_the_channel_file_is_atomic_and_a_broken_one_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "k.db.devslack.json"
    messages = {"1.0001": Message("C1", "1.0001", "hi", [{"type": "divider"}], None, edits=2)}
    persist.write_atomically(path, json.dumps(persist.snapshot(messages)))
    assert not (tmp_path / "k.db.devslack.json.tmp").exists()
    loaded = persist.load(path)
    assert loaded["1.0001"].blocks == [{"type": "divider"}] and loaded["1.0001"].edits == 2
    assert persist.load(tmp_path / "missing.json") == {}
    path.write_text('{"version": 1, "messages": [{"nope": 1}]}')
    assert persist.load(path) == {}
    assert not path.exists() and (tmp_path / "k.db.devslack.json.bad").exists()
    assert persist.state_file_for("data/kern.db") == Path("data/kern.db.devslack.json")
    assert persist.state_file_for("postgresql://h/db") == Path("kern-bot-dev.devslack.json")
