"""The Block Kit building blocks every kern-bot message and form uses: action and view ids, text
objects, buttons, times."""

from __future__ import annotations

import re
import time
from typing import Any

from bot.blocks.text import BUTTON_TEXT, SECTION_TEXT, clip, escape, truncate
from kern.run import requirement as kinds
from kern.run.requirement import StepRequirement
from kern.workflow.types import OnReject, OnTimeout

Blocks = list[dict[str, Any]]

# action_id values (one listener each)
CONFIRM, REJECT = "kern:confirm", "kern:reject"
OPEN_INPUT, VIEW_FULL, OPEN_EDIT, OPEN_FEEDBACK = "kern:input", "kern:full", "kern:edit", "kern:feedback"
ROUTE_PICK, ROUTE_GO = "kern:route", "kern:route_go"
RETRY, SKIP = "kern:retry", "kern:skip"
RUN_STATUS, RUN_CANCEL = "kern:run_status", "kern:run_cancel"
TOOL_OK, TOOL_NO, TOOL_INPUT, TOOL_RESULT = "kern:tool_ok", "kern:tool_no", "kern:tool_input", "kern:tool_result"
TOOL_ANSWER = "kern:tool_answer"
TOOL_ALLOW_RUN, TOOL_ALLOW_WORKFLOW = "kern:tool_allow_run", "kern:tool_allow_workflow"
HANDOVER = "kern:handover"
OPEN_APPROVE = "kern:approve_note"  # "Approve with comment…": a form, then an approval with its comment
# view callback_id values
V_INPUT, V_EDIT, V_FEEDBACK = "kern:v_input", "kern:v_edit", "kern:v_feedback"
V_TOOL_NOTE, V_TOOL_INPUT, V_TOOL_RESULT, V_INFO = (
    "kern:v_tool_note",
    "kern:v_tool_input",
    "kern:v_tool_result",
    "kern:v_info",
)
V_TOOL_FEEDBACK = "kern:v_tool_feedback"
V_HANDOVER = "kern:v_handover"
V_APPROVE = "kern:v_approve"
V_START, V_START_PICK = "kern:v_start", "kern:v_start_pick"
# global shortcut callback_id (in both manifests)
RUN_SHORTCUT = "kern:run_shortcut"
ROUTE_BLOCK = "kern_route"


def plain(text: str, limit: int = SECTION_TEXT) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate(text or " ", limit), "emoji": True}


def md(text: str, limit: int = SECTION_TEXT) -> dict[str, Any]:
    """A mrkdwn text object of `text`, which is markup already (text from people escaped where it was put in)."""
    return {"type": "mrkdwn", "text": clip(text or " ", limit)}


def section(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": md(text), **extra}


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [md(text, 2000)]}


def button(
    text: str, action_id: str, value: str, style: str | None = None, confirm: dict[str, Any] | None = None
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "text": plain(text, BUTTON_TEXT),
        "action_id": action_id,
        "value": value,
    }
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def confirm_dialog(title: str, text: str, confirm: str, deny: str) -> dict[str, Any]:
    """A Block Kit confirm dialog (danger style) that a button shows before it acts."""
    return {
        "title": plain(title, 100),
        "text": plain(text, 300),
        "confirm": plain(confirm, 30),
        "deny": plain(deny, 30),
        "style": "danger",
    }


def retries_used_up(req: StepRequirement) -> bool:
    """An output review whose step was sent back `max_retries` times: kern cancels the run on the next
    rejection ("Max retries (N) reached for step ...") instead of running the step again."""
    return (
        req.kind == kinds.OUTPUT_REVIEW
        and req.on_reject is OnReject.retry
        and req.max_retries is not None
        and req.retry_count >= req.max_retries
    )


def sent_back(req: StepRequirement) -> str:
    """How often the reviewed step was sent back: "sent back once", "sent back 3 times"."""
    n = req.retry_count
    return "sent back once" if n == 1 else f"sent back {n} times"


def rejecting_cancels(req: StepRequirement) -> bool:
    """Whether rejecting this pause cancels the whole run (so the reject control asks first)."""
    return req.on_reject is OnReject.cancel or retries_used_up(req)


def slack_time(at: float, fallback: str = "", *, seconds: bool = False) -> str:
    """A timestamp Slack shows in each reader's own time zone (`seconds`: the time of day to the second,
    for a moment minutes away)."""
    shown = "{time_secs}" if seconds else "{date_short_pretty} at {time}"
    return f"<!date^{int(at)}^{shown}|{fallback or int(at)}>"


SHORT_WAIT = 600  # a deadline less than this many seconds after its pause is told to the second


def in_seconds(seconds: float) -> str:
    """ "45 s", "2 min 30 s": a short wait, to the second."""
    whole = max(0, round(seconds))
    minutes, rest = divmod(whole, 60)
    if not minutes:
        return f"{rest} s"
    return f"{minutes} min" + (f" {rest} s" if rest else "")


def who(user: str | None) -> str:
    """A Slack mention for a user id, or kern itself (timeouts, sweeps)."""
    return f"<@{user}>" if user and user.startswith(("U", "W")) else "kern"


_CANCELLED_BY = re.compile(r"Cancelled by (?:<@([UW][A-Z0-9]+)>|([UW][A-Z0-9]+))")


def reason_line(reason: str) -> str:
    """kern's reason for ending a run, as mrkdwn: the bot's own "Cancelled by <@U1>" (or kern's "Cancelled
    by U1") names the person; any other reason (a rejection with its feedback, ...) may quote a person or
    a model, and is shown escaped, so a mention in it stays text."""
    named = _CANCELLED_BY.fullmatch(reason)
    return f"Cancelled by {who(named[1] or named[2])}" if named else escape(reason)


def stamp(verb: str, by: str | None, at: float | None) -> str:
    """`verb by @someone at <time>`, the time in each reader's own time zone."""
    return f"{verb} by {who(by)} at {slack_time(at or time.time())}"


def humanize(name: str) -> str:
    """A field or step name as a label: "due_date" -> "Due date", "dueDate" -> "Due date"."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name.replace("_", " ").replace("-", " ")).split()
    if not words:
        return name
    text = " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in words)
    return text[0].upper() + text[1:]


def deadline_line(req: StepRequirement) -> str | None:
    if req.deadline is None:
        return None
    outcomes: dict[OnTimeout | None, str] = {
        OnTimeout.approve: "it is approved automatically",
        OnTimeout.reject: "it is rejected automatically",
        OnTimeout.skip: "it is rejected automatically",
    }
    action = outcomes.get(req.on_timeout, "the run is cancelled")
    wait = req.deadline - req.created_at
    if 0 < wait < SHORT_WAIT:
        by = slack_time(req.deadline, seconds=True)
        return f":alarm_clock: If nobody answers within {in_seconds(wait)} (by {by}), {action}."
    return f":alarm_clock: If nobody answers by {slack_time(req.deadline)}, {action}."
