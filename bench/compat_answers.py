"""The person at the keyboard for the reference's cookbook examples, as `bench/compat.py` runs them.

The runner copies this file as `sitecustomize.py` into a folder on the example's PYTHONPATH, so Python loads
it before `python example.py` starts. It answers `input()` and rich's `Prompt.ask` / `Confirm.ask` (through
`Console.input`) from the prompt's text:

- `$COMPAT_ANSWERS` (JSON `[[regex, answer-or-list], ...]`, the runner's table for this example) first: a
  list gives its answers in turn, then repeats its last one;
- rich's offered choices (`[a/b/c]`): `y` when offered, else the first; else rich's default, if shown;
- `yes/no`, `y/n` -> `y`; `retry/skip` -> `skip`; `[a]pprove / [e]dit` -> `a`; `(1-4)`, "number" -> `1`;
- "choice"/"select"/"route": the first `- name` or `1. name` item the example printed since the last prompt;
- a field's allowed values (`[formal, casual]`, `'fast' or 'accurate'`): the first; `(bool)` -> `true`;
- feedback-like prompts -> a short sentence; anything else -> `$COMPAT_DEFAULT_ANSWER` (`1`).

Each prompt and its answer is echoed to stdout, and after 200 prompts `EOFError` stops a loop that never ends.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import sys
from typing import Any

_LIMIT = 200
_state: dict[str, Any] = {"count": 0, "since_prompt": [], "rule_uses": {}}
_RULES: list[tuple[str, Any]] = [tuple(rule) for rule in json.loads(os.environ.get("COMPAT_ANSWERS", "[]") or "[]")]
_DEFAULT = os.environ.get("COMPAT_DEFAULT_ANSWER", "1")


class _Recorder:
    """sys.stdout, also keeping the lines written since the last prompt (to find offered choices)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        _state["since_prompt"].extend(text.splitlines())
        del _state["since_prompt"][:-200]
        return int(self._inner.write(text))

    def flush(self) -> None:
        self._inner.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def choose(prompt: str, printed: list[str], *, rich: bool = False) -> str:
    """The answer to one prompt, given the lines printed since the previous one (`rich`: a rich prompt,
    which shows its default in parentheses at the end)."""
    text = prompt.strip()
    low = text.lower()
    for index, (pattern, answer) in enumerate(_RULES):
        if re.search(pattern, text, re.IGNORECASE):
            if isinstance(answer, list):
                used = _state["rule_uses"].get(index, 0)
                _state["rule_uses"][index] = used + 1
                return str(answer[min(used, len(answer) - 1)])
            return str(answer)
    offered = re.search(r"\[([^\[\]]+/[^\[\]]+)\]\s*(\([^)]*\))?\s*:?\s*$", text)
    if offered:
        options = [o.strip() for o in offered.group(1).split("/")]
        return "y" if "y" in options else options[0]
    if rich and re.search(r"\([^()]*\)\s*:?\s*$", text):
        return ""  # rich's default
    if "retry" in low and "skip" in low:
        return "skip"
    if "[a]pprove" in low:
        return "a"
    if re.search(r"yes/no|y/n", low):
        return "y"
    if re.search(r"\(\d+-\d+\)|number", low):
        return "1"
    if re.search(r"choice|select|route", low):
        for line in printed:
            bullet = re.match(r"^\s*(?:[-*•]|\d+[.)])\s+([\w./-]+)", line)
            if bullet:
                return bullet.group(1)
        return "1"
    listed = re.search(r"\[([\w-]+(?:,\s*[\w-]+)+)\]", text)
    if listed:  # a field's allowed values, "[formal, casual, technical]"
        return listed.group(1).split(",")[0].strip()
    quoted = re.findall(r"'([\w-]+)'", text)
    if len(quoted) >= 2:  # "'fast' or 'accurate'"
        return quoted[0]
    if re.search(r"\(bool(ean)?\)", low):
        return "true"
    if re.search(r"feedback|what should change|edited version|comment|reason", low):
        return "Looks good, keep it short."
    return _DEFAULT


def _answer(prompt: str, *, rich: bool = False) -> str:
    _state["count"] += 1
    if _state["count"] > _LIMIT:
        raise EOFError(f"compat runner: more than {_LIMIT} prompts")
    printed, _state["since_prompt"] = _state["since_prompt"], []
    reply = choose(prompt, printed, rich=rich)
    echo = sys.__stdout__
    if echo is not None:
        echo.write(f"{prompt}{reply}  [answered by the compat runner]\n")
        echo.flush()
    return reply


def _input(prompt: object = "") -> str:
    return _answer(str(prompt))


def _console_input(self: Any, prompt: Any = "", *args: Any, **kwargs: Any) -> str:
    plain = getattr(prompt, "plain", None)
    return _answer(plain if isinstance(plain, str) else str(prompt), rich=True)


builtins.input = _input
sys.stdout = _Recorder(sys.stdout)
try:
    import rich.console

    rich.console.Console.input = _console_input  # type: ignore[method-assign]
except ImportError:  # rich is optional for the examples
    pass
