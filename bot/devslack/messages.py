"""The stand-in's messages: one posted to a channel (`Message`) and an ephemeral one (`Ephemeral`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Message:
    """A message as posted to a channel (or a thread), with its edits."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    broadcast: bool = False  # a thread reply also shown in the channel (reply_broadcast)
    edits: int = 0
    posted_at: float = field(default_factory=time.perf_counter)
    at: float = field(default_factory=time.time)  # wall-clock time, for the page
    team: str = ""  # the workspace whose bot token posted it
    metadata: dict[str, Any] | None = None  # the app's message metadata (event_type, event_payload)
    user: str = ""  # who wrote it, for a person's message typed on the dev page ("": the app posted it)
    files: list[dict[str, Any]] | None = None  # file objects shared with it (bot/devslack/files.py)
    # A streamed message (bot/devslack/streams.py): "in_progress" while it streams, "completed" once stopped
    # ("": posted whole); its task cards by id, in the order they came; how it streams ("chunks" or
    # "markdown_text": every call of one stream must use the same).
    streaming: str = ""
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    stream_mode: str = ""


class Ephemeral(dict[str, Any]):
    """An ephemeral message as posted (compares as that dict), and when (`at`, for the page's order)."""

    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__(fields)
        self.at = time.time()
