"""A pause message once decided: the outcome is its header ("Approved", "Chose quick", "Retries used up:
run cancelled"), shown once; who decided and when are shown, and what was decided on stays (the question,
the tool calls and their arguments, the submitted values, the reviewed or edited output, the error). It is
the audit trail: every vote with its voter, time and comment, the tally, hand-overs, the escalation, the
reason or comment given with the decision, and the standing approval that approved a tool call.

Pure functions of the stored requirement and the decision kern recorded (never of a click's payload),
so a message delivered late or twice shows the same thing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bot.blocks.kit import Blocks, context, humanize, md, retries_used_up, section, slack_time, who
from bot.blocks.pauses import MAX_SHOWN_CALLS, call_blocks, head_line, review_text, shows_message
from bot.blocks.text import (
    FIELD_TEXT,
    SECTION_TEXT,
    as_text,
    clip,
    escape,
    quote,
    shown,
    truncate,
    value_text,
)
from kern.run import requirement as kinds
from kern.run.requirement import StepRequirement
from kern.workflow.types import OnReject

DECIDED_OUTPUT = 1200  # characters of a reviewed output kept on the decided message
SHORT_VALUE = 120  # a submitted value this long or shorter is shown in a field (half the width)
VALUE_PREVIEW = 600  # characters of a long submitted value shown on the decided message
TIMED_OUT = {
    "confirm": "approved automatically",
    "reject": "rejected automatically",
    "cancel": "run cancelled",
    "input": "default values used",
    "auto": "route chosen automatically",
    "retry": "retried automatically",
    "skip": "skipped automatically",
    "executor": "tool calls decided automatically",
}


@dataclass
class Outcome:
    """What a decision did, as the decided message's header says it."""

    header: str
    emoji: str
    by: str | None = None
    at: float | None = None
    verb: str = "Decided"  # what the person did, for the byline: "Approved by @x at <time>"

    @property
    def when(self) -> str:
        return slack_time(self.at or time.time())

    @property
    def byline(self) -> str:
        """`Approved by @someone at <time>`, or `Decided at <time>` when kern decided (a deadline)."""
        person = who(self.by)
        return f"{self.verb} by {person} at {self.when}" if person != "kern" else f"Decided at {self.when}"

    @property
    def summary(self) -> str:
        """One line of mrkdwn: the header, who and when (the notification text, and what the bot's store keeps)."""
        return f"{self.emoji} {escape(self.header)} · {self.byline}"


def outcome(req: StepRequirement, detail: dict[str, Any], branches: tuple[str, str] | None = None) -> Outcome:
    """The outcome of `req` from the resolution kern recorded (`detail`: decision, by, at, status).
    `branches` names what a Condition's two answers run (if steps, else steps)."""
    decision = detail.get("decision") or {}
    action, by, at = decision.get("action"), detail.get("by"), detail.get("at")
    if detail.get("status") == "cancelled" or (action == "cancel" and not decision.get("timed_out")):
        return Outcome("Run cancelled", ":no_entry:", by, at, "Cancelled")
    if decision.get("timed_out"):
        return Outcome(f"Timed out: {TIMED_OUT.get(action or '', 'decided automatically')}", ":alarm_clock:", None, at)
    if action == "confirm":
        if branches is not None:
            return Outcome(f"Chose: Yes, ran {branches[0]}", ":white_check_mark:", by, at, "Answered")
        return Outcome("Approved", ":white_check_mark:", by, at, "Approved")
    if action == "reject":
        header, emoji = _rejected(req, decision, branches)
        verb = "Answered" if branches is not None else "Sent back" if header.startswith("Sent") else "Rejected"
        return Outcome(header, emoji, by, at, verb)
    if action == "edit":
        return Outcome("Edited and approved", ":pencil2:", by, at, "Edited")
    if action == "input":
        return Outcome("Input provided", ":memo:", by, at, "Submitted")
    if action == "select":
        return Outcome(
            f"Chose {', '.join(decision.get('choices') or [])}", ":twisted_rightwards_arrows:", by, at, "Chosen"
        )
    if action == "retry":
        return Outcome("Retried", ":repeat:", by, at, "Retried")
    if action == "skip":
        return Outcome("Skipped", ":fast_forward:", by, at, "Skipped")
    if action == "executor":
        calls = req.executor_requirements or []
        answers = [c.tool_execution.confirmed for c in calls]
        if answers and all(a is False for a in answers):
            return Outcome(
                "Rejected" if len(calls) == 1 else "Tool calls rejected", ":no_entry_sign:", by, at, "Rejected"
            )
        if answers and all(a is True for a in answers) and not any(c.user_feedback_schema for c in calls):
            return Outcome(
                "Approved" if len(calls) == 1 else "Tool calls approved", ":white_check_mark:", by, at, "Approved"
            )
        return Outcome("Tool calls decided", ":white_check_mark:", by, at)
    return Outcome("Approved", ":white_check_mark:", by, at, "Approved")


def _rejected(req: StepRequirement, decision: dict[str, Any], branches: tuple[str, str] | None) -> tuple[str, str]:
    """What a rejection did, as kern's engine applies it (SEMANTICS.md, "Resolution, per pause")."""
    on_reject = OnReject.parse(decision.get("on_reject"), "on_reject") or req.on_reject
    feedback = decision.get("feedback")
    if on_reject is OnReject.cancel:
        return "Rejected: run cancelled", ":no_entry:"
    if branches is not None:  # a Condition's "No": its else steps, or nothing
        if on_reject is OnReject.else_branch and branches[1]:
            return f"Chose: No, ran {branches[1]}", ":twisted_rightwards_arrows:"
        return "Chose: No, skipped", ":fast_forward:"
    if req.kind == kinds.OUTPUT_REVIEW and on_reject is OnReject.retry:
        if retries_used_up(req):  # kern cancels: "Max retries (N) reached for step ..."
            return "Retries used up: run cancelled", ":no_entry:"
        return ("Sent back with feedback" if feedback else "Sent back"), ":leftwards_arrow_with_hook:"
    if req.kind == kinds.ITERATION_REVIEW:  # skip, retry and else all run another iteration
        return ("Sent back with feedback" if feedback else "Sent back"), ":leftwards_arrow_with_hook:"
    if req.kind == kinds.OUTPUT_REVIEW:
        return "Rejected: output dropped", ":no_entry_sign:"
    if on_reject is OnReject.retry and req.kind == kinds.CONFIRMATION:
        return "Rejected: runs with the feedback", ":no_entry_sign:"
    return "Rejected: step skipped", ":no_entry_sign:"


def decided_blocks(
    req: StepRequirement,
    *,
    workflow: str,
    outcome: Outcome,
    decision: dict[str, Any] | None = None,
    tool_summaries: dict[int, str] | None = None,
    trail: list[str] | None = None,
    note: str | None = None,
    voted: bool = False,
) -> tuple[str, Blocks]:
    """The pause message after its decision: the outcome as header (once: no open label), no controls,
    what was decided on kept, what was done to it on the way (`trail`: votes with voters and times, the
    tally, hand-overs, the escalation), the reason or comment given with the decision, and who and when.
    `decision` is kern's recorded decision and `note` its audit note (a comment with an approval);
    `voted`: the pause was decided by votes, whose comments and reasons are on the trail, each on its voter's
    line; `tool_summaries` the bot's line per decided tool call (by index), each naming who decided it."""
    decision = decision or {}
    trail = trail or []
    blocks: Blocks = [section(head_line(f"{outcome.emoji} *{escape(truncate(outcome.header, 300))}*", workflow, req))]
    if shows_message(req):
        blocks.append(section(quote(req.message, SECTION_TEXT)))
    blocks.extend(_kept(req, decision, tool_summaries or {}))
    if not voted:  # with votes, each voter's comment or reason is on their line of the trail
        blocks.extend(_said(req, decision, note))
    blocks.extend(_trail(trail))
    if req.kind != kinds.EXECUTOR or _by_kern(outcome, decision):  # each tool call says who decided it, and when
        blocks.append(context(outcome.byline))
    return clip(f"{escape(workflow)} / {escape(req.step_name)}: {outcome.summary}", 3000), blocks


def _by_kern(outcome: Outcome, decision: dict[str, Any]) -> bool:
    """A decision no person made on the message: the run cancelled, or its deadline."""
    return outcome.header == "Run cancelled" or bool(decision.get("timed_out"))


def _said(req: StepRequirement, decision: dict[str, Any], note: str | None) -> Blocks:
    """The comment given with an approval, or the reason given with a confirmation's rejection (a review's
    feedback is kept with the output, `_kept`)."""
    action = decision.get("action")
    if action in ("confirm", "edit") and note and not decision.get("timed_out"):
        return [section("*Comment*\n" + quote(note, 1500))]
    if action == "reject" and req.kind == kinds.CONFIRMATION and decision.get("feedback"):
        return [section("*Reason*\n" + quote(decision["feedback"], 1500))]
    return []


TRAIL_PART = 1900  # characters of trail lines per context element (Slack allows 2000; up to 10 elements)


def _trail(lines: list[str]) -> Blocks:
    """The trail as one context block: lines grouped into elements within Slack's limits."""
    parts: list[str] = []
    for line in lines:
        line = clip(line, TRAIL_PART)
        if parts and len(parts[-1]) + 1 + len(line) <= TRAIL_PART:
            parts[-1] += "\n" + line
        else:
            parts.append(line)
    if not parts:
        return []
    if len(parts) > 10:
        parts = [*parts[:9], f"{len(parts) - 9} more parts of the record are in kern's audit log."]
    return [{"type": "context", "elements": [md(p, 2000) for p in parts]}]


def _kept(req: StepRequirement, decision: dict[str, Any], summaries: dict[int, str]) -> Blocks:
    """What the decision was made on, by kind."""
    if req.kind == kinds.USER_INPUT:
        values = decision.get("user_input") or req.user_input or {}
        return [_values_block(values)] if values else []
    if req.kind in (kinds.OUTPUT_REVIEW, kinds.ITERATION_REVIEW):
        blocks: Blocks = []
        if decision.get("action") == "edit":
            edited = shown(decision.get("output"), DECIDED_OUTPUT, "Edited output", block=True)
            blocks.append({"type": "section", "text": edited})
            blocks.append(context("Replaced the output under review:"))
        blocks.append({"type": "section", "text": shown(review_text(req), DECIDED_OUTPUT, block=True)})
        if decision.get("feedback"):
            blocks.append({"type": "section", "text": shown(decision["feedback"], 1500, "Feedback")})
        return blocks
    if req.kind == kinds.ERROR:
        return [{"type": "section", "text": shown(req.error or "unknown error", SECTION_TEXT - 20, block=True)}]
    if req.kind == kinds.ROUTE_SELECTION and req.available_choices:
        chosen = set(decision.get("choices") or [])
        routes = ", ".join(f"*{escape(c)}*" if c in chosen else escape(c) for c in req.available_choices)
        return [context(clip(f"Routes: {routes}", 1900))]
    if req.kind == kinds.EXECUTOR:
        return _calls(req, summaries)
    return []


def _values_block(values: dict[str, Any]) -> dict[str, Any]:
    """The submitted values as given (a checkbox "Yes"/"No"): side by side while they are short, else one
    full-width line each, a long one cut to a preview with "… (N more characters)"."""
    given = {truncate(humanize(k), 100): value_text(v) for k, v in values.items()}
    if len(given) <= 10 and all(len(v) <= SHORT_VALUE and "\n" not in v for v in given.values()):
        return {"type": "section", "fields": [shown(v, FIELD_TEXT, k) for k, v in given.items()]}
    each = max(100, (SECTION_TEXT - 100) // len(given))
    lines = [f"*{escape(k)}*: {quote(v, min(each, VALUE_PREVIEW)) or '_empty_'}" for k, v in given.items()]
    return section(clip("\n".join(lines), SECTION_TEXT))


def _calls(req: StepRequirement, summaries: dict[int, str]) -> Blocks:
    blocks: Blocks = []
    calls = req.executor_requirements or []
    for index, call in enumerate(calls[:MAX_SHOWN_CALLS]):
        blocks.extend(call_blocks(call))
        blocks.append(context(summaries.get(index) or _call_summary(call)))
    if len(calls) > MAX_SHOWN_CALLS:
        blocks.append(context(f"{len(calls) - MAX_SHOWN_CALLS} more tool calls were decided."))
    return blocks


def _call_summary(call: Any) -> str:
    """A tool call's decision read from the call itself (one decided by a deadline, or from elsewhere)."""
    te = call.tool_execution
    if te.confirmed is False:
        note = f": {quote(te.confirmation_note, 500)}" if te.confirmation_note else ""
        return f":no_entry_sign: Rejected by {who(call.resolved_by)}{note}"
    if te.confirmed is True:
        return f":white_check_mark: Approved by {who(call.resolved_by)}"
    if te.result is None and not call.resolved_by:  # never decided: the run was cancelled first
        return ":heavy_minus_sign: Not decided"
    result = escape(truncate(as_text(te.result), 300)) if te.result is not None else ""
    return f"Decided by {who(call.resolved_by)}" + (f": {result}" if result else "")
