"""The Block Kit building blocks every kern-bot message and form uses: action and view ids, text
objects, buttons, times."""

from __future__ import annotations

from typing import Any

from bot.text import BUTTON_TEXT, SECTION_TEXT, truncate
from kern.run.requirement import StepRequirement
from kern.workflow.types import OnTimeout

Blocks = list[dict[str, Any]]

# action_id values (one listener each)
CONFIRM, REJECT = "kern:confirm", "kern:reject"
OPEN_INPUT, VIEW_FULL, OPEN_EDIT, OPEN_FEEDBACK = "kern:input", "kern:full", "kern:edit", "kern:feedback"
ROUTE_PICK, ROUTE_GO = "kern:route", "kern:route_go"
RETRY, SKIP = "kern:retry", "kern:skip"
RUN_STATUS, RUN_CANCEL = "kern:run_status", "kern:run_cancel"
TOOL_OK, TOOL_NO, TOOL_INPUT, TOOL_RESULT = "kern:tool_ok", "kern:tool_no", "kern:tool_input", "kern:tool_result"
TOOL_ANSWER = "kern:tool_answer"
# view callback_id values
V_INPUT, V_EDIT, V_FEEDBACK = "kern:v_input", "kern:v_edit", "kern:v_feedback"
V_TOOL_NOTE, V_TOOL_INPUT, V_TOOL_RESULT, V_INFO = (
    "kern:v_tool_note",
    "kern:v_tool_input",
    "kern:v_tool_result",
    "kern:v_info",
)
V_TOOL_FEEDBACK = "kern:v_tool_feedback"
V_START, V_START_PICK = "kern:v_start", "kern:v_start_pick"
# global shortcut callback_id (in both manifests)
RUN_SHORTCUT = "kern:run_shortcut"
ROUTE_BLOCK = "kern_route"


def plain(text: str, limit: int = SECTION_TEXT) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate(text or " ", limit), "emoji": True}


def md(text: str, limit: int = SECTION_TEXT) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": truncate(text or " ", limit)}


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


def slack_time(at: float, fallback: str = "") -> str:
    """A timestamp Slack shows in each reader's own time zone."""
    return f"<!date^{int(at)}^{{date_short_pretty}} at {{time}}|{fallback or int(at)}>"


def deadline_line(req: StepRequirement) -> str | None:
    if req.deadline is None:
        return None
    action = {OnTimeout.approve: "it is approved automatically", OnTimeout.reject: "it is rejected automatically"}.get(
        req.on_timeout, "the run is cancelled"
    )  # type: ignore[arg-type]
    return f":alarm_clock: If nobody answers by {slack_time(req.deadline)}, {action}."
