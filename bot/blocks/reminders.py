"""Reminders and escalations, and the line that tells a run's starter how it ended: pure Block Kit.

A reminder is something a person can act on where they read it: it says what is asked (the pause's own
title and question, not a step id), that it waits on them and since when, and it carries the pause's own
controls (the same action ids and values as the pause message, so a click goes through the same listeners
and the same rules), or, for a tool-call pause (whose controls belong next to each call's arguments), a
link to the pause message. It names only its recipients: the person a DM goes to, or those the pause
mentions in the run's thread. Once the pause is decided, every reminder posted for it is redrawn as
`reminder_decided_blocks`: the outcome and who decided, no controls.
"""

from __future__ import annotations

from bot.blocks.decided import Outcome
from bot.blocks.kit import Blocks, context, reason_line, section, slack_time, who
from bot.blocks.pauses import head_line, pause_blocks, pause_title
from bot.blocks.text import SECTION_TEXT, clip, describe_duration, escape, quote, truncate
from kern.run import requirement as kinds
from kern.run.requirement import StepRequirement

REMIND, ESCALATE = "remind", "escalate"


def waited(seconds: float) -> str:
    """How long a pause has waited, to the minute ("1 min", "2 h", "3 d"): "under a minute" below one."""
    if seconds < 60:
        return "under a minute"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h".replace(".0 h", " h")
    return describe_duration(round(seconds / 86400) * 86400)


def _lead(kind: str, n: int, of: int) -> str:
    if kind == ESCALATE:
        return ":arrow_double_up: *Escalated*"
    return f":bell: *Reminder {n} of {of}*" if of > 1 else ":bell: *Reminder*"


def _question(req: StepRequirement) -> str:
    """What the pause asks, in one line for a notification: its message, or what its kind asks for."""
    if req.message and req.kind != kinds.EXECUTOR:
        return truncate(" ".join(req.message.split()), 150)
    if req.kind == kinds.EXECUTOR:
        tools = [c.tool_execution.tool_name for c in req.executor_requirements or []]
        return f"{pause_title(req).split(' ', 1)[1]}: {truncate(', '.join(tools), 100)}"
    return pause_title(req).split(" ", 1)[1]


def reminder_blocks(
    req: StepRequirement,
    *,
    workflow: str,
    kind: str,
    to: str,
    at: float,
    n: int = 1,
    of: int = 1,
    link: str | None = None,
    branches: tuple[str, str] | None = None,
) -> tuple[str, Blocks]:
    """A reminder (`kind` REMIND: the `n`th of `of`) or an escalation (ESCALATE) about the open pause `req`,
    sent at `at`: (fallback text, blocks).

    `to` is whom it names (mrkdwn mentions: `<@U1>` in a DM, the pause's mentions in the run's thread; ""
    for nobody); it starts the fallback text, which drives Slack's notifications. `link` is the pause
    message's permalink. `branches` names what a Condition's two answers run."""
    long, since = f"*{waited(at - req.created_at)}*", f"(since {slack_time(req.created_at)})"
    if kind == ESCALATE:
        line = f"nobody has answered this in {long} {since}, so it escalated: you may answer it now."
        line = f"{to}, {line}" if to else line[0].upper() + line[1:]
    else:
        line = f"{to}, this has waited {long} for your answer {since}." if to else f"This has waited {long} {since}."
    head = f"{_lead(kind, n, of)} · {line}"
    blocks: Blocks = [section(head)]
    if req.kind == kinds.EXECUTOR:
        # A tool call's controls belong beside its arguments (and a redraw keeps them in step): the pause itself.
        blocks.append(section(head_line(f"*{pause_title(req)}*", workflow, req)))
        count = len(req.executor_requirements or [])
        calls = "its tool call" if count == 1 else f"its {count} tool calls"
        where = f"<{link}|Open the pause message>" if link else "Open the pause message in the run's thread"
        blocks.append(section(f":point_right: {where} to see {calls} and answer."))
    else:
        _fallback, pause = pause_blocks(req, workflow=workflow, branches=branches)
        # The pause's own blocks (its question, what it shows, its controls, its deadline), without its
        # "Who may answer" line and hand-over, which only the pause message carries.
        blocks.extend(b for b in pause if b.get("block_id") != f"h:{req.requirement_id}" and not _who_line(b))
        if link:
            blocks.append(context(f"<{link}|Open the pause message> (who may answer it, hand it over)"))
    name = "Escalated" if kind == ESCALATE else f"Reminder {n} of {of}" if of > 1 else "Reminder"
    fallback = f"{name}: {escape(_question(req))} ({escape(workflow)} / {escape(req.step_name)}) waits for an answer"
    return clip(f"{to} {fallback}" if to else fallback, 3000), blocks


def _who_line(block: dict[str, object]) -> bool:
    if block.get("type") != "context":
        return False
    elements = block.get("elements") or []
    first = elements[0] if isinstance(elements, list) and elements else {}
    return isinstance(first, dict) and str(first.get("text", "")).startswith("Who may answer:")


def reminder_decided_blocks(
    req: StepRequirement, *, workflow: str, kind: str, result: Outcome, link: str | None = None
) -> tuple[str, Blocks]:
    """A reminder or an escalation once its pause is decided: what was asked, the outcome and who decided;
    no controls, nobody named but the decider."""
    what = "Escalation" if kind == ESCALATE else "Reminder"
    blocks: Blocks = [section(head_line(f"{result.emoji} *{escape(result.header)}*", workflow, req))]
    if req.message and req.kind != kinds.EXECUTOR:
        blocks.append(section(quote(req.message, SECTION_TEXT)))
    line = f"{result.byline}. This {what.lower()} needs nothing more from you."
    if link:
        line += f" <{link}|Open the pause message>"
    blocks.append(context(line))
    fallback = f"{what}, answered: {escape(_question(req))} · {result.byline}"
    return clip(fallback, 3000), blocks


def run_ended_text(
    *,
    starter: str,
    run_id: str,
    workflow: str,
    status: str,
    reason: str = "",
    rejected_by: str | None = None,
    feedback: str | None = None,
    timed_out: bool = False,
    link: str | None = None,
) -> str:
    """The line that tells the person who started a run how it ended (`status`: COMPLETED, CANCELLED or
    ERROR; `reason`: kern's reason or error text; `rejected_by`: who rejected the pause that cancelled it).
    It mentions the starter alone, besides whoever rejected it."""
    line = f"<@{starter}>, your run `{run_id[:12]}` of `{escape(workflow)}`"
    if status == "COMPLETED":
        line = f":white_check_mark: {line} completed."
    elif status == "ERROR":
        line = f":x: {line} failed: {escape(truncate(' '.join(reason.split()), 300)) or 'no reason given'}."
    elif rejected_by is not None:
        line = f":no_entry: {line} was rejected by {who(rejected_by)}, so it was cancelled."
        if feedback:
            line += f" Their reason: {quote(truncate(feedback, 300), 400)}"
    elif timed_out:
        line = f":no_entry: {line} was cancelled: nobody answered in time."
    elif reason.startswith("Cancelled"):
        line = f":no_entry: {line} was {reason_line(reason).replace('Cancelled', 'cancelled', 1)}."
    else:
        line = f":no_entry: {line} was cancelled: {escape(truncate(reason, 300)) or 'no reason given'}."
    return f"{line} <{link}|Open the run card>" if link else line
