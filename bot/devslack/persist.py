"""The dev page's channel kept in a file beside the database, so that after `kern-bot dev` restarts the
messages (cards, pauses, threads, their state) are still there and runs paused in the database can still
be answered from the page.

The file is JSON, written atomically (a temporary file, then a rename) a moment after changes, off the
event loop; one more write happens at shutdown. Ephemeral messages and open modals are not kept (Slack
does not keep them either).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.devslack.slack import Message

log = logging.getLogger("kern_bot")
VERSION = 1
DELAY = 0.2  # seconds: changes within this window are written once


def state_file_for(db: str) -> Path:
    """Where the channel is kept for the database `db` (a SQLite path, or a URL: then the current
    directory)."""
    if "://" in db:
        return Path("kern-bot-dev.devslack.json")
    return Path(f"{db}.devslack.json")


def snapshot(messages: dict[str, Message]) -> dict[str, Any]:
    fields = [f.name for f in dataclasses.fields(Message) if f.name != "posted_at"]
    return {"version": VERSION, "messages": [{k: getattr(m, k) for k in fields} for m in messages.values()]}


def restore(data: dict[str, Any]) -> dict[str, Message]:
    """Messages from a snapshot; raises ValueError if it is not one."""
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("messages"), list):
        raise ValueError("not a kern-bot dev channel file")
    try:
        messages = [Message(**item) for item in data["messages"]]
    except TypeError as exc:
        raise ValueError(f"not a kern-bot dev channel file ({exc})") from None
    return {m.ts: m for m in messages}


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def load(path: Path) -> dict[str, Message]:
    """The messages kept in `path`; none if there is no file. A file that cannot be read is set aside
    (renamed `.bad`) with a warning, never lost."""
    try:
        with open(path, encoding="utf-8") as source:
            return restore(json.load(source))
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        log.warning("kern-bot dev: %s is unreadable (%s); kept as %s.bad, starting empty", path, exc, path.name)
        with contextlib.suppress(OSError):
            os.replace(path, path.with_name(path.name + ".bad"))
        return {}


class Saver:
    """Writes `snapshot()` to `path` shortly after `soon()` is called, one write at a time."""

    def __init__(self, path: Path, take: Callable[[], dict[str, Any]]) -> None:
        self.path = path
        self.take = take
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def soon(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True  # written once more after the write in progress
            return
        self._task = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        while True:
            self._again = False
            await asyncio.sleep(DELAY)
            try:
                text = json.dumps(self.take())  # on the loop: the messages do not change meanwhile
                await asyncio.to_thread(write_atomically, self.path, text)
            except OSError as exc:
                log.warning("kern-bot dev: could not keep the channel in %s: %s", self.path, exc)
            if not self._again:
                return

    async def close(self) -> None:
        """Finish any pending write, then write the final state."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                self._task.cancel()
                await self._task
        write_atomically(self.path, json.dumps(self.take()))
