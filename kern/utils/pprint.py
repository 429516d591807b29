"""`pprint_run_response`: print what a run answered (the reference API's helper, used by its examples)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterable, Iterable
from typing import Any, TextIO

from pydantic import BaseModel

from kern.run.agent import RunCompletedEvent, RunContentEvent
from kern.run.workflow import WorkflowCompletedEvent


def _as_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, BaseModel):
        return content.model_dump_json(indent=2, exclude_none=True)
    return json.dumps(content, indent=4, default=str)


class _Printer:
    """Writes a stream's answer: each content piece as it comes, else the final event's content."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.wrote = False
        self.started = time.monotonic()

    def event(self, event: Any) -> None:
        if isinstance(event, RunContentEvent):
            text = "" if event.content is None else _as_text(event.content)
        elif isinstance(event, (RunCompletedEvent, WorkflowCompletedEvent)) and not self.wrote:
            text = "" if event.content is None else _as_text(event.content)
        else:
            return
        if text:
            self.out.write(text)
            self.out.flush()
            self.wrote = True

    def end(self, show_time: bool) -> None:
        self.out.write("\n")
        if show_time:
            self.out.write(f"({time.monotonic() - self.started:.1f}s)\n")


def pprint_run_response(
    run_response: Any, markdown: bool = False, show_time: bool = False, *, file: TextIO | None = None
) -> None:
    """Print a run's answer: its `content` (text as is, anything else as JSON), or, for a stream of
    events, each content piece as it arrives. `show_time` adds how long the stream took. `markdown` is
    accepted: kern prints the text as written, without rendering it."""
    out = file or sys.stdout
    if isinstance(run_response, Iterable) and not isinstance(run_response, (str, bytes, dict)):
        printer = _Printer(out)
        for event in run_response:
            printer.event(event)
        printer.end(show_time)
        return
    content = getattr(run_response, "content", run_response)
    out.write(("" if content is None else _as_text(content)) + "\n")


async def apprint_run_response(
    run_response: Any, markdown: bool = False, show_time: bool = False, *, file: TextIO | None = None
) -> None:
    """`pprint_run_response` for an async stream of events (or a finished run)."""
    if not isinstance(run_response, AsyncIterable):
        pprint_run_response(run_response, markdown, show_time, file=file)
        return
    printer = _Printer(file or sys.stdout)
    async for event in run_response:
        printer.event(event)
    printer.end(show_time)


__all__ = ["apprint_run_response", "pprint_run_response"]
