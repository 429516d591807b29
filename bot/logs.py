"""Logging of kern-bot: plain text lines, or JSON objects one per line (`--log-format json`,
KERN_LOG_FORMAT=json) carrying the run and the pause the line is about.

Where the bot handles a run or a pause it calls `about(run_id=..., requirement_id=...)`; the ids live in
context variables, so every line logged from that task, and from the tasks it spawns, carries them.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO

RUN_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("kern_bot_run_id", default=None)
REQUIREMENT_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("kern_bot_requirement_id", default=None)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def about(*, run_id: str | None = None, requirement_id: str | None = None) -> None:
    """Say which run (and pause) the current task is handling, for the log lines it writes from now on."""
    if run_id is not None:
        RUN_ID.set(run_id)
    if requirement_id is not None:
        REQUIREMENT_ID.set(requirement_id)


class ContextIds(logging.Filter):
    """Puts the current run_id and requirement_id on each record (unless the call passed its own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "run_id", None) is None:
            record.run_id = RUN_ID.get()
        if getattr(record, "requirement_id", None) is None:
            record.requirement_id = REQUIREMENT_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, then run_id and
    requirement_id where known, and the traceback of an exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("run_id", "requirement_id"):
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def setup_logging(log_format: str = "text", *, stream: IO[str] | None = None, level: int = logging.INFO) -> None:
    """Configure the root logger for `log_format` ("text" or "json"), replacing its handlers."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextIds())
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # kern says what each upgrade did, in one line
