"""The pytest plugin `bench/compat.py` loads into the reference tests' run (`-p compat_plugin`): it appends one
JSON line per test phase and per collection error to `$COMPAT_RESULTS`, and fails a test that runs longer than
`$COMPAT_TEST_TIMEOUT` seconds (SIGALRM, so a hung test does not stop the others).

The file is written line by line, so what was recorded survives a run the runner had to kill.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

_ERROR_LINE = re.compile(r"^E\s+(\S.*)$")
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Timeout|Failed|Warning)\b")


class CompatTimeout(Exception):
    """The test ran past the runner's per-test budget."""


def first_error_line(longrepr: Any) -> str:
    """The one line a developer groups a failure by: the exception type and message."""
    if longrepr is None:
        return ""
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        lines = [line.strip() for line in str(crash.message).strip().splitlines()]
        if re.search(r"validation errors? for", lines[0]):  # pydantic: the first error says what
            return " | ".join(lines[:3])
        return lines[0]
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, line, reason)
        return str(longrepr[2]).strip().splitlines()[0] if str(longrepr[2]).strip() else ""
    lines = str(longrepr).splitlines()
    errors = [m.group(1) for line in lines if (m := _ERROR_LINE.match(line))]
    for candidate in errors:
        if _EXCEPTION.match(candidate):
            return candidate
    if errors:
        return errors[0]
    rest = [line.strip() for line in lines if line.strip()]
    return rest[-1] if rest else ""


def _write(record: dict[str, Any]) -> None:
    path = os.environ.get("COMPAT_RESULTS")
    if path:
        with Path(path).open("a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _write({"kind": "collect", "nodeid": report.nodeid, "error": first_error_line(report.longrepr)})


def pytest_collection_finish(session: pytest.Session) -> None:
    _write({"kind": "collected", "nodeids": [item.nodeid for item in session.items]})


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _write(
        {
            "kind": "phase",
            "nodeid": report.nodeid,
            "when": report.when,
            "outcome": report.outcome,
            "error": first_error_line(report.longrepr) if report.outcome != "passed" else "",
            "seconds": round(report.duration, 3),
        }
    )


def _expired(signum: int, frame: Any) -> None:
    raise CompatTimeout(f"test ran longer than {os.environ.get('COMPAT_TEST_TIMEOUT')} s (compat runner budget)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    budget = int(os.environ.get("COMPAT_TEST_TIMEOUT", "0") or 0)
    if budget > 0:
        previous = signal.signal(signal.SIGALRM, _expired)
        signal.alarm(budget)
    try:
        yield
    finally:
        if budget > 0:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
