"""What a pause is about, shown on every copy of it (thread, DM, App Home): the run's input, what the last
step before it gave, what a confirmed step will run, and the workflow author's own context (a renderer
declared on `BotWorkflow`: `context=`, `step_context=`), and the question worded from the run's data
(`step_messages=`).

The author's code runs here, each time the pause is drawn: a renderer that raises, or returns what is not
text or valid blocks, leaves the pause as it would be without it, and says why (`Rendered.problem`) for the
caller to log. Text a renderer returns is data (from people and models): escaped once, here. Blocks it
returns are the author's markup: checked against Block Kit's limits (SLACK.md, section 2) and taken as they
are, without their `block_id`s (the pause's own ids must stay unique).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.blocks.kit import Blocks, context, md
from bot.blocks.text import CONTEXT_TEXT, SECTION_TEXT, as_text, escape, quote, truncate
from kern.run import requirement as kinds
from kern.run.requirement import StepRequirement

# A renderer: (run, requirement) -> text (escaped here), Block Kit blocks (the author's), or None.
Renderer = Callable[[Any, StepRequirement], Any]
MOST_BLOCKS = 5  # blocks a renderer may add to a pause message (a message holds 50; a tool-call pause uses ~45)
MOST_TEXT = 3000  # characters of text a renderer's blocks may hold together (a message's budget is ~12k)
INPUT_SHOWN = 600  # characters of the run's input and the previous output shown
_BLOCK_KEYS = {
    "section": {"type", "text", "fields", "accessory", "block_id"},
    "context": {"type", "elements", "block_id"},
    "divider": {"type", "block_id"},
    "header": {"type", "text", "block_id"},
    "image": {"type", "image_url", "alt_text", "title", "block_id"},
}


@dataclass
class Rendered:
    """What `about_blocks` or `question` made, and the problem (None: none) that left something out."""

    blocks: Blocks = field(default_factory=list)
    text: str | None = None
    problem: str | None = None


def previous_output(run: Any, req: StepRequirement) -> tuple[str, Any] | None:
    """(step name, content) of the last step that ran before the pause's step (not skipped), if any."""
    last = None
    for output in _flat(getattr(run, "step_results", None) or []):
        if output.step_name == req.step_name:
            break
        if not output.skipped and output.content is not None:
            last = (output.step_name or "step", output.content)
    return last


def _flat(outputs: list[Any]) -> list[Any]:
    found = []
    for output in outputs:
        inner = getattr(output, "steps", None) or []
        found.extend(_flat(inner) if inner else [output])
    return found


def template_values(run: Any, req: StepRequirement) -> dict[str, Any]:
    """What a `step_messages` template may name: `{input}` (the run's input; `{input[key]}` or
    `{input.field}` for a dict or model), `{session_state[key]}`, `{additional_data[key]}`, `{previous}` (the
    last step's output), `{step}` and `{run_id}`."""
    previous = previous_output(run, req)
    return {
        "input": getattr(run, "input", None),
        "session_state": getattr(run, "session_state", None) or {},
        "additional_data": getattr(run, "additional_data", None) or {},
        "previous": previous[1] if previous else "",
        "step": req.step_name,
        "run_id": getattr(run, "run_id", ""),
    }


def question(spec: str | Renderer | None, run: Any, req: StepRequirement) -> Rendered:
    """The pause's question from `spec` (a template or a callable (run, requirement) -> text), or no text
    (keep kern's `req.message`) when there is none or it fails (`problem` says why)."""
    if spec is None or run is None:
        return Rendered()
    try:
        if isinstance(spec, str):
            text: Any = string.Formatter().vformat(spec, (), template_values(run, req))
        else:
            text = spec(run, req)
    except Exception as exc:  # the author's code: any failure leaves kern's question
        return Rendered(problem=f"{type(exc).__name__}: {exc}")
    if not isinstance(text, str) or not text.strip():
        return Rendered(problem=f"gave {type(text).__name__} {truncate(repr(text), 80)}, not text")
    return Rendered(text=text)


def about_blocks(run: Any, req: StepRequirement, does: str | None, renderer: Renderer | None) -> Rendered:
    """The lines that say what a pause is about, under its question: the run's input and the last output
    before it (not on a tool call, whose arguments say it), what a confirmed step runs (`does`, mrkdwn),
    then the author's context from `renderer`. `problem` names a renderer that failed (left out)."""
    lines = []
    if run is not None and req.kind != kinds.EXECUTOR:
        given = getattr(run, "input", None)
        if given not in (None, "", {}, []):
            lines.append(f"*Input:* {quote(as_text(given), INPUT_SHOWN)}")
        previous = previous_output(run, req)
        if previous is not None:
            lines.append(f"*From {escape(truncate(previous[0], 100))}:* {quote(as_text(previous[1]), INPUT_SHOWN)}")
    if does and req.kind == kinds.CONFIRMATION:
        lines.append(f"*Approving runs* {does}")
    made = Rendered([context("\n".join(lines))] if lines else [])
    if renderer is None or run is None:
        return made
    try:
        given = renderer(run, req)
    except Exception as exc:  # the author's code: the pause shows without it
        made.problem = f"raised {type(exc).__name__}: {exc}"
        return made
    if given is None or given == "" or given == []:
        return made
    if isinstance(given, str):
        made.blocks.append({"type": "section", "text": md(quote(given, SECTION_TEXT))})
        return made
    problems = check_blocks(given)
    if problems:
        made.problem = "returned blocks Slack would refuse: " + "; ".join(problems[:3])
        return made
    made.blocks.extend({k: v for k, v in block.items() if k != "block_id"} for block in given)
    return made


def check_blocks(blocks: Any) -> list[str]:
    """Why Slack would refuse `blocks` from a context renderer, or would not show them on a pause (empty: fine).
    Only blocks that show something are taken (section, context, divider, header, image); nothing
    interactive (its clicks would have no listener)."""
    if not isinstance(blocks, list) or not all(isinstance(b, Mapping) for b in blocks):
        return [f"not text or a list of blocks ({type(blocks).__name__})"]
    problems: list[str] = []
    if not 1 <= len(blocks) <= MOST_BLOCKS:
        problems.append(f"{len(blocks)} blocks (1 to {MOST_BLOCKS} allowed)")
    total = 0

    def text(obj: Any, where: str, limit: int, plain: bool = False) -> None:
        nonlocal total
        kinds_ok = ("plain_text",) if plain else ("plain_text", "mrkdwn")
        if not isinstance(obj, Mapping) or obj.get("type") not in kinds_ok or not isinstance(obj.get("text"), str):
            problems.append(f"{where}: not a {' or '.join(kinds_ok)} text object")
            return
        if not obj["text"] or len(obj["text"]) > limit:
            problems.append(f"{where}: text of {len(obj['text'])} characters (1 to {limit})")
        total += len(obj["text"])

    def image(el: Any, where: str) -> None:
        if not isinstance(el, Mapping) or not isinstance(el.get("image_url"), str) or not el["image_url"]:
            problems.append(f"{where}: an image needs an image_url")
        elif len(el["image_url"]) > 3000 or not (
            isinstance(el.get("alt_text"), str) and 0 < len(el["alt_text"]) <= 2000
        ):
            problems.append(f"{where}: image_url at most 3000 characters, alt_text 1 to 2000")

    for n, block in enumerate(blocks):
        kind, where = block.get("type"), f"block {n}"
        if kind not in _BLOCK_KEYS:
            problems.append(f"{where}: type {kind!r} (allowed: {', '.join(_BLOCK_KEYS)})")
            continue
        unknown = set(block) - _BLOCK_KEYS[kind]
        if unknown:
            problems.append(f"{where}: unknown {kind} fields {', '.join(sorted(map(str, unknown)))}")
        if kind == "section":
            if "text" not in block and "fields" not in block:
                problems.append(f"{where}: a section needs text or fields")
            if "text" in block:
                text(block["text"], f"{where} text", SECTION_TEXT)
            fields = block.get("fields", [])
            if not isinstance(fields, list) or len(fields) > 10:
                problems.append(f"{where}: at most 10 fields")
            else:
                for i, item in enumerate(fields):
                    text(item, f"{where} field {i}", 2000)
            if "accessory" in block and (
                not isinstance(block["accessory"], Mapping) or block["accessory"].get("type") != "image"
            ):
                problems.append(f"{where}: only an image accessory is allowed")
            elif "accessory" in block:
                image(block["accessory"], f"{where} accessory")
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                problems.append(f"{where}: 1 to 10 elements")
            else:
                for i, el in enumerate(elements):
                    if isinstance(el, Mapping) and el.get("type") == "image":
                        image(el, f"{where} element {i}")
                    else:
                        text(el, f"{where} element {i}", CONTEXT_TEXT)
        elif kind == "header":
            text(block.get("text"), f"{where} text", 150, plain=True)
        elif kind == "image":
            image(block, where)
    if total > MOST_TEXT:
        problems.append(f"{total} characters of text (at most {MOST_TEXT})")
    return problems
