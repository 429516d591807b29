"""Pause messages: what each kind of pause posts, with the controls that resolve it (the same message
once decided is `decided.py`'s)."""

from __future__ import annotations

from typing import Any

from bot.blocks.forms import questions_text
from bot.blocks.kit import (
    CONFIRM,
    HANDOVER,
    OPEN_APPROVE,
    OPEN_EDIT,
    OPEN_FEEDBACK,
    OPEN_INPUT,
    REJECT,
    RETRY,
    ROUTE_BLOCK,
    ROUTE_GO,
    ROUTE_PICK,
    SKIP,
    TOOL_ALLOW_RUN,
    TOOL_ALLOW_WORKFLOW,
    TOOL_ANSWER,
    TOOL_INPUT,
    TOOL_NO,
    TOOL_OK,
    TOOL_RESULT,
    VIEW_FULL,
    Blocks,
    button,
    confirm_dialog,
    context,
    deadline_line,
    humanize,
    plain,
    rejecting_cancels,
    retries_used_up,
    section,
    sent_back,
)
from bot.blocks.text import (
    FIELD_TEXT,
    MESSAGE_BLOCK_TEXT_BUDGET,
    OPTION_TEXT,
    OUTPUT_PREVIEW,
    SECTION_TEXT,
    as_text,
    clip,
    escape,
    quote,
    shown,
    truncate,
)
from kern.run import requirement as kinds
from kern.run.requirement import StepRequirement
from kern.workflow.types import OnReject

MAX_SHOWN_CALLS = 12


def pause_title(req: StepRequirement) -> str:
    """What the pause asks for, with its emoji: ":raised_hand: Approval needed"."""
    return {
        kinds.CONFIRMATION: ":raised_hand: Approval needed",
        kinds.USER_INPUT: ":memo: Input needed",
        kinds.OUTPUT_REVIEW: ":mag: Review needed",
        kinds.ITERATION_REVIEW: f":repeat: Review iteration {req.iteration or ''}".rstrip(),
        kinds.ROUTE_SELECTION: ":twisted_rightwards_arrows: Choose a route",
        kinds.ERROR: ":warning: A step failed",
        kinds.EXECUTOR: ":hammer_and_wrench: Tool call needs approval",
    }[req.kind]


def pause_blocks(
    req: StepRequirement,
    *,
    workflow: str,
    approvers: str = "anyone",
    branches: tuple[str, str] | None = None,
    tool_decisions: dict[int, str] | None = None,
    mention: str = "",
    standing: str | None = None,
    about: Blocks | None = None,
) -> tuple[str, Blocks]:
    """The message a pause posts in the run's thread, with the controls that resolve it.

    `branches` names what a Condition's buttons run (if, else); `tool_decisions` marks executor tool
    calls already decided (by index) while others still wait. `mention` (e.g. `<@U1> <!subteam^S1>`)
    starts the message's text, which drives Slack's notifications. A tool call that only needs approval
    also offers "Always allow" in this run, and, with `standing` (how long, e.g. "8 h"), in this workflow.
    `about`: what the pause is about, under its question (`bot.blocks.about`: input, the author's context).
    """
    rid = req.requirement_id
    blocks: Blocks = [section(head_line(f"*{pause_title(req)}*", workflow, req))]
    if shows_message(req):
        blocks.append(section(quote(req.message, SECTION_TEXT)))
    at = len(blocks)
    if req.kind == kinds.CONFIRMATION:
        blocks.append(_confirm_actions(req, branches))
    elif req.kind == kinds.USER_INPUT:
        names = ", ".join(humanize(f.name) for f in req.user_input_schema or []) or "free-form values"
        blocks.append(context(f"Fields: {escape(truncate(names, 1500))}"))
        blocks.append(
            {
                "type": "actions",
                "block_id": f"a:{rid}",
                "elements": [button("Provide input", OPEN_INPUT, rid, "primary")],
            }
        )
    elif req.kind in (kinds.OUTPUT_REVIEW, kinds.ITERATION_REVIEW):
        text = review_text(req)
        blocks.append({"type": "section", "text": shown(text, OUTPUT_PREVIEW, block=True)})
        elements = [
            button("Approve", CONFIRM, rid, "primary"),
            button("Edit", OPEN_EDIT, rid),
            button("Reject with feedback", OPEN_FEEDBACK, rid, "danger", _cancel_confirm(req)),
        ]
        if len(escape(text)) > OUTPUT_PREVIEW - 20:
            elements.insert(0, button("View full", VIEW_FULL, rid))
        blocks.append({"type": "actions", "block_id": f"a:{rid}", "elements": elements})
        if req.kind == kinds.ITERATION_REVIEW:
            then = "cancels the run" if req.on_reject is OnReject.cancel else "runs another iteration"
            blocks.append(context(f"Approving ends the loop with this output; rejecting {then}."))
        elif retries_used_up(req):
            blocks.append(
                context(
                    f":warning: *Retries used up: rejecting cancels the run* ({sent_back(req)} already, the "
                    "most allowed)."
                )
            )
        elif req.on_reject is OnReject.cancel:
            blocks.append(context("Rejecting cancels the run."))
        elif req.on_reject is OnReject.retry:
            blocks.append(
                context(
                    f"Rejecting sends it back with your feedback (retry {req.retry_count + 1}"
                    + (f" of {req.max_retries})." if req.max_retries is not None else ").")
                )
            )
    elif req.kind == kinds.ROUTE_SELECTION:
        blocks.extend(_route_blocks(req))
    elif req.kind == kinds.ERROR:
        blocks.append({"type": "section", "text": shown(req.error or "unknown error", SECTION_TEXT - 20, block=True)})
        blocks.append(
            {
                "type": "actions",
                "block_id": f"a:{rid}",
                "elements": [button("Retry", RETRY, rid, "primary"), button("Skip step", SKIP, rid)],
            }
        )
    elif req.kind == kinds.EXECUTOR:
        blocks.extend(_tool_blocks(req, tool_decisions or {}, standing))
    line = deadline_line(req)
    if line:
        blocks.append(context(line))
    blocks.append(context(f"Who may answer: {approvers}"))
    blocks.append({"type": "actions", "block_id": f"h:{rid}", "elements": [button("Hand over…", HANDOVER, rid)]})
    blocks[at:at] = _fitting(about or [], blocks)
    fallback = f"{pause_title(req).split(' ', 1)[1]}: {escape(workflow)} / {escape(req.step_name)}"
    if req.message:
        fallback += f" — {escape(req.message)}"
    if mention:
        fallback = f"{mention} {fallback}"
    return clip(fallback, 3000), blocks


def _fitting(about: Blocks, blocks: Blocks) -> Blocks:
    """As much of `about` as fits beside `blocks` in one message: Slack's 50 blocks, and the budget of
    text all blocks share (`MESSAGE_BLOCK_TEXT_BUDGET`); the rest is left out, saying so."""
    room = MESSAGE_BLOCK_TEXT_BUDGET - text_size(blocks)
    kept: Blocks = []
    for block in about:
        size = text_size([block])
        if len(blocks) + len(kept) + 2 > 50 or size > room - 100:
            return [*kept, context("_(More about this pause is left out: the message is full.)_")]
        kept.append(block)
        room -= size
    return kept


def text_size(blocks: Any) -> int:
    """The characters of text in `blocks` (every text object's, as Slack adds them up)."""
    if isinstance(blocks, dict):
        own = len(blocks["text"]) if isinstance(blocks.get("text"), str) else 0
        return own + sum(text_size(v) for k, v in blocks.items() if isinstance(v, (dict, list)))
    if isinstance(blocks, list):
        return sum(text_size(v) for v in blocks)
    return 0


def shows_message(req: StepRequirement) -> bool:
    """Whether a pause message shows the requirement's message: not a tool call's (the calls say it), nor a
    failed step's, whose message only repeats the error shown below it ("Step 'x' failed: <error>")."""
    return bool(req.message) and req.kind not in (kinds.EXECUTOR, kinds.ERROR)


_WAITING_FOR = {
    kinds.CONFIRMATION: "needs an approval",
    kinds.USER_INPUT: "needs input",
    kinds.OUTPUT_REVIEW: "its output needs a review",
    kinds.ROUTE_SELECTION: "a route needs choosing",
    kinds.ERROR: "it failed: retry or skip it",
}
_CALL_WAITS_FOR = {
    "user_feedback": "the agent asks a question",
    "user_input": "a tool call needs input",
    "external_execution": "a tool call needs its result",
}


def waiting_for(req: StepRequirement) -> str:
    """What a paused run waits for, for its card and `/kern status`: "needs an approval", "a tool call needs
    approval", "its output needs a review"."""
    if req.kind == kinds.ITERATION_REVIEW:
        return f"iteration {req.iteration} needs a review" if req.iteration else "an iteration needs a review"
    if req.kind == kinds.EXECUTOR:
        open_calls = [c for c in req.executor_requirements or [] if c.status == "pending"]
        if len(open_calls) > 1:
            return f"{len(open_calls)} tool calls need an answer"
        kind = open_calls[0].kind if open_calls else "confirmation"
        return _CALL_WAITS_FOR.get(kind, "a tool call needs approval")
    return _WAITING_FOR.get(req.kind, "needs an answer")


def _confirm_actions(req: StepRequirement, branches: tuple[str, str] | None) -> dict[str, Any]:
    """Approve in one click; "Approve with comment…" and "Reject…" open a form for the comment or the
    reason (`forms.note_form`), which warns when rejecting cancels the run. A Condition's two answers are
    choices, one click each."""
    rid = req.requirement_id
    if branches:
        no = f"No: run {branches[1]}" if branches[1] else "No: skip it"
        elements = [
            button(f"Yes: run {branches[0]}", CONFIRM, rid, "primary"),
            button(no, REJECT, rid, "danger", _cancel_confirm(req)),
        ]
    else:
        elements = [
            button("Approve", CONFIRM, rid, "primary"),
            button("Approve with comment…", OPEN_APPROVE, rid),
            button("Reject…", OPEN_FEEDBACK, rid, "danger"),
        ]
    return {"type": "actions", "block_id": f"a:{rid}", "elements": elements}


def _cancel_confirm(req: StepRequirement) -> dict[str, Any] | None:
    """The dialog a reject control shows first when rejecting cancels the run."""
    if not rejecting_cancels(req):
        return None
    if retries_used_up(req):
        text = f"It was {sent_back(req)}, the most allowed: rejecting again cancels the run."
        return confirm_dialog("Retries used up", text, "Reject and cancel", "Keep waiting")
    text = "Rejecting cancels the whole run. This cannot be undone."
    return confirm_dialog("Reject and cancel?", text, "Reject", "Keep waiting")


def head_line(lead: str, workflow: str, req: StepRequirement) -> str:
    """The first line of a pause message: `lead` (what is asked, or what was decided), then where."""
    return f"{lead} · `{escape(workflow)}` / *{escape(req.step_name)}*"


def _route_blocks(req: StepRequirement) -> Blocks:
    rid = req.requirement_id
    choices = req.available_choices or []
    options = [{"text": plain(name, OPTION_TEXT), "value": str(i)} for i, name in enumerate(choices)]
    select: dict[str, Any] = {
        "type": "multi_static_select" if req.allow_multiple_selections else "static_select",
        "action_id": ROUTE_PICK,
        "placeholder": plain("Choose routes" if req.allow_multiple_selections else "Choose a route", 150),
    }
    if len(options) <= 100:
        select["options"] = options
    else:
        select["option_groups"] = [
            {"label": plain(f"Routes {i + 1}-{min(i + 100, len(options))}", 75), "options": options[i : i + 100]}
            for i in range(0, min(len(options), 10000), 100)
        ]
    return [
        {"type": "actions", "block_id": ROUTE_BLOCK, "elements": [select]},
        {"type": "actions", "block_id": f"a:{rid}", "elements": [button("Continue", ROUTE_GO, rid, "primary")]},
    ]


def call_value(requirement_id: str, index: int) -> str:
    """What a tool call's buttons and forms carry: `<pause id>:<call index>` (read by `read_call_value`)."""
    return f"{requirement_id}:{index}"


def read_call_value(value: str) -> tuple[str, int | None]:
    """The pause id and call index of a `call_value`. The index is None unless it is a plain whole number
    of a few digits (a payload can be tampered with: `-1` would pick the last call)."""
    rid, _, index = value.partition(":")
    return rid, int(index) if index.isascii() and index.isdigit() and len(index) <= 6 else None


def _tool_blocks(req: StepRequirement, decided: dict[int, str], standing: str | None = None) -> Blocks:
    rid = req.requirement_id
    blocks: Blocks = []
    calls = req.executor_requirements or []
    for index, call in enumerate(calls[:MAX_SHOWN_CALLS]):
        blocks.extend(call_blocks(call))
        value = call_value(rid, index)

        def tool_button(text: str, action: str, style: str) -> dict[str, Any]:
            # action_ids must be unique within a message: one set of buttons per call
            return button(text, f"{action}:{index}", value, style or None)  # noqa: B023 - used at once

        if index in decided:
            blocks.append(context(decided[index]))
            continue
        # by what the call asks for (`kind`), not by what it still needs: a decided call keeps its buttons' meaning
        if call.kind == "user_feedback":
            first = tool_button("Answer", TOOL_ANSWER, "primary")
        elif call.kind == "user_input":
            first = tool_button("Fill in", TOOL_INPUT, "primary")
        elif call.kind == "external_execution":
            first = tool_button("Paste result", TOOL_RESULT, "primary")
        else:
            first = tool_button("Approve once", TOOL_OK, "primary")
        plain_call = call.kind == "confirmation"
        reject_text = "Reject with note" if plain_call else "Reject"
        elements = [first]
        if plain_call:
            name = truncate(call.tool_execution.tool_name, 30)
            elements.append(tool_button(f"Always allow {name} in this run", TOOL_ALLOW_RUN, ""))
            if standing:
                elements.append(tool_button(f"… in this workflow ({standing})", TOOL_ALLOW_WORKFLOW, ""))
        elements.append(tool_button(reject_text, TOOL_NO, "danger"))
        blocks.append({"type": "actions", "block_id": f"a:{rid}:{index}", "elements": elements})
    if len(calls) > MAX_SHOWN_CALLS:
        blocks.append(context(f"{len(calls) - MAX_SHOWN_CALLS} more tool calls are waiting; answer these first."))
    return blocks


def call_blocks(call: Any) -> Blocks:
    """One tool call as a pause shows it (and keeps showing it once decided): who calls which tool with
    which arguments, or the questions an agent asks."""
    te = call.tool_execution
    who = f"*{escape(call.member_agent_name)}*" if call.member_agent_name else "The agent"
    if call.user_feedback_schema:
        return [
            section(f"{who} asks you (`{escape(truncate(te.tool_name, 200))}`):"),
            section(questions_text(call.user_feedback_schema or [])),
        ]
    return [section(f"{who} wants to call `{escape(truncate(te.tool_name, 200))}`"), args_block(te.tool_args)]


def args_block(args: dict[str, Any]) -> dict[str, Any]:
    short = all(len(as_text(v)) <= 200 for v in args.values())
    if args and len(args) <= 10 and short:
        return {
            "type": "section",
            "fields": [shown(v, FIELD_TEXT - 120, truncate(k, 100)) for k, v in args.items()],
        }
    return {"type": "section", "text": shown(args, 2000, block=True)} if args else section("_no arguments_")


def review_text(req: StepRequirement) -> str:
    """The output under review (`req.step_output` is a StepOutput) as text."""
    return as_text(req.step_output.content if req.step_output is not None else None)
