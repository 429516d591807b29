"""Pauses, runs and decisions as Block Kit: pure functions, no I/O.

Every interactive element carries an opaque id only (a requirement id, or `<id>:<n>` for the n-th
tool call of an executor pause); everything else is read from the database when a person acts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.text import (
    BUTTON_TEXT,
    FIELD_TEXT,
    HEADER_TEXT,
    INPUT_HINT,
    INPUT_LABEL,
    MODAL_TITLE,
    OPTION_TEXT,
    OUTPUT_PREVIEW,
    SECTION_TEXT,
    TEXT_INPUT_MAX,
    as_text,
    code_block,
    escape,
    quote,
    truncate,
)
from kern.run import requirement as kinds
from kern.run.requirement import StepRequirement
from kern.workflow.types import OnReject, OnTimeout, UserInputField

if TYPE_CHECKING:
    from kern.tools.user_feedback import AskUserQuestion

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
ROUTE_BLOCK = "kern_route"
MAX_SHOWN_CALLS = 12


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


# ----- the run card ----------------------------------------------------------------------------------
@dataclass
class Card:
    """What the run card shows."""

    run_id: str
    workflow: str
    input: Any
    started_by: str
    status: str = "Starting…"
    output: Any = None
    error: str | None = None
    finished: bool = False
    steps: list[str] = field(default_factory=list)


def card_blocks(card: Card) -> tuple[str, Blocks]:
    """The run card: workflow, input, who started it, a status line, then the output or the error."""
    blocks: Blocks = [
        {"type": "header", "text": plain(f"Workflow: {card.workflow}", HEADER_TEXT)},
        {
            "type": "section",
            "fields": [
                md(f"*Input*\n{quote(card.input, FIELD_TEXT - 20) or '_none_'}", FIELD_TEXT),
                md(f"*Started by*\n<@{card.started_by}>", FIELD_TEXT),
            ],
        },
        context(f"{escape(card.status)}  ·  run `{card.run_id[:12]}`"),
    ]
    if card.error:
        blocks.append(section(":x: *Error*\n" + code_block(card.error, SECTION_TEXT - 20)))
    elif card.finished and card.output is not None:
        text = as_text(card.output)
        blocks.append(section("*Output*\n" + code_block(text, OUTPUT_PREVIEW)))
        if len(escape(text)) > OUTPUT_PREVIEW - 6:
            blocks.append(
                {"type": "actions", "elements": [button("View full output", VIEW_FULL, f"run:{card.run_id}")]}
            )
    if not card.finished:
        confirm = {
            "title": plain("Cancel this run?", 100),
            "text": plain(f"{card.workflow}: nothing after the step now running will run.", 300),
            "confirm": plain("Cancel run", 30),
            "deny": plain("Keep it", 30),
            "style": "danger",
        }
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    button("Status", RUN_STATUS, card.run_id),
                    button("Cancel run", RUN_CANCEL, card.run_id, "danger", confirm),
                ],
            }
        )
    fallback = f"{card.workflow}: {card.status}"
    return truncate(fallback, 3000), blocks


# ----- pause messages ----------------------------------------------------------------------------------
def _title(req: StepRequirement) -> str:
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
) -> tuple[str, Blocks]:
    """The message a pause posts in the run's thread, with the controls that resolve it.

    `branches` names what a Condition's buttons run (if, else); `tool_decisions` marks executor tool
    calls already decided (by index) while others still wait.
    """
    rid = req.requirement_id
    head = f"*{_title(req)}* · `{escape(workflow)}` / *{escape(req.step_name)}*"
    blocks: Blocks = [section(head)]
    if req.message and req.kind != kinds.EXECUTOR:
        blocks.append(section(quote(req.message, SECTION_TEXT)))
    if req.kind == kinds.CONFIRMATION:
        blocks.append(_confirm_actions(req, branches))
    elif req.kind == kinds.USER_INPUT:
        names = ", ".join(f.name for f in req.user_input_schema or []) or "free-form values"
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
        blocks.append(section(code_block(text, OUTPUT_PREVIEW)))
        elements = [
            button("Approve", CONFIRM, rid, "primary"),
            button("Edit", OPEN_EDIT, rid),
            button("Reject with feedback", OPEN_FEEDBACK, rid, "danger"),
        ]
        if len(escape(text)) > OUTPUT_PREVIEW - 6:
            elements.insert(0, button("View full", VIEW_FULL, rid))
        blocks.append({"type": "actions", "block_id": f"a:{rid}", "elements": elements})
        if req.kind == kinds.ITERATION_REVIEW:
            then = "cancels the run" if req.on_reject is OnReject.cancel else "runs another iteration"
            blocks.append(context(f"Approving ends the loop with this output; rejecting {then}."))
        elif req.on_reject is OnReject.retry:
            blocks.append(
                context(
                    f"Rejecting sends it back with your feedback (retry {req.retry_count + 1} of {req.max_retries})."
                )
            )
    elif req.kind == kinds.ROUTE_SELECTION:
        blocks.extend(_route_blocks(req))
    elif req.kind == kinds.ERROR:
        blocks.append(section(code_block(req.error or "unknown error", SECTION_TEXT - 20)))
        blocks.append(
            {
                "type": "actions",
                "block_id": f"a:{rid}",
                "elements": [button("Retry", RETRY, rid, "primary"), button("Skip step", SKIP, rid)],
            }
        )
    elif req.kind == kinds.EXECUTOR:
        blocks.extend(_tool_blocks(req, tool_decisions or {}))
    line = deadline_line(req)
    if line:
        blocks.append(context(line))
    blocks.append(context(f"Who may answer: {approvers}"))
    fallback = f"{_title(req).split(' ', 1)[1]}: {workflow} / {req.step_name}"
    if req.message:
        fallback += f" — {req.message}"
    return truncate(fallback, 3000), blocks


def _confirm_actions(req: StepRequirement, branches: tuple[str, str] | None) -> dict[str, Any]:
    rid = req.requirement_id
    approve_text, reject_text = "Approve", "Reject"
    if branches:
        approve_text = f"Yes: run {branches[0]}"
        reject_text = f"No: run {branches[1]}" if branches[1] else "No: skip it"
    confirm = None
    if req.on_reject is OnReject.cancel:
        confirm = {
            "title": plain("Reject and cancel?", 100),
            "text": plain("Rejecting cancels the whole run. This cannot be undone.", 300),
            "confirm": plain("Reject", 30),
            "deny": plain("Keep waiting", 30),
            "style": "danger",
        }
    return {
        "type": "actions",
        "block_id": f"a:{rid}",
        "elements": [
            button(approve_text, CONFIRM, rid, "primary"),
            button(reject_text, REJECT, rid, "danger", confirm),
        ],
    }


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


def _tool_blocks(req: StepRequirement, decided: dict[int, str]) -> Blocks:
    rid = req.requirement_id
    blocks: Blocks = []
    calls = req.executor_requirements or []
    for index, call in enumerate(calls[:MAX_SHOWN_CALLS]):
        te = call.tool_execution
        who = f"*{escape(call.member_agent_name)}*" if call.member_agent_name else "The agent"
        if call.needs_user_feedback:
            blocks.append(section(f"{who} asks you (`{escape(truncate(te.tool_name, 200))}`):"))
            blocks.append(section(questions_text(call.user_feedback_schema or [])))
        else:
            blocks.append(section(f"{who} wants to call `{escape(truncate(te.tool_name, 200))}`"))
            blocks.append(_args_block(te.tool_args))
        value = f"{rid}:{index}"

        def tool_button(text: str, action: str, style: str) -> dict[str, Any]:
            # action_ids must be unique within a message: one set of buttons per call
            return button(text, f"{action}:{index}", value, style)  # noqa: B023 - used at once

        if index in decided:
            blocks.append(context(decided[index]))
            continue
        if call.needs_user_feedback:
            first = tool_button("Answer", TOOL_ANSWER, "primary")
        elif call.needs_user_input:
            first = tool_button("Fill in", TOOL_INPUT, "primary")
        elif call.is_external_tool_execution:
            first = tool_button("Paste result", TOOL_RESULT, "primary")
        else:
            first = tool_button("Approve", TOOL_OK, "primary")
        plain_call = not (call.needs_user_input or call.is_external_tool_execution or call.needs_user_feedback)
        reject_text = "Reject with note" if plain_call else "Reject"
        blocks.append(
            {
                "type": "actions",
                "block_id": f"a:{rid}:{index}",
                "elements": [first, tool_button(reject_text, TOOL_NO, "danger")],
            }
        )
    if len(calls) > MAX_SHOWN_CALLS:
        blocks.append(context(f"{len(calls) - MAX_SHOWN_CALLS} more tool calls are waiting; answer these first."))
    return blocks


def _args_block(args: dict[str, Any]) -> dict[str, Any]:
    short = all(len(as_text(v)) <= 200 for v in args.values())
    if args and len(args) <= 10 and short:
        return {
            "type": "section",
            "fields": [
                md(f"*{escape(truncate(k, 100))}*\n{quote(v, FIELD_TEXT - 120) or '_empty_'}", FIELD_TEXT)
                for k, v in args.items()
            ],
        }
    return section(code_block(args, 2000) if args else "_no arguments_")


def review_text(req: StepRequirement) -> str:
    """The output under review (`req.step_output` is a StepOutput) as text."""
    return as_text(req.step_output.content if req.step_output is not None else None)


def decided_blocks(req: StepRequirement, *, workflow: str, outcome: str) -> tuple[str, Blocks]:
    """The pause message after its decision: no controls, the outcome (who, when) in their place."""
    head = f"*{_title(req)}* · `{escape(workflow)}` / *{escape(req.step_name)}*"
    blocks: Blocks = [section(head)]
    if req.kind in (kinds.OUTPUT_REVIEW, kinds.ITERATION_REVIEW):
        blocks.append(section(code_block(review_text(req), 1200)))
    blocks.append(section(outcome))
    return truncate(f"{workflow} / {req.step_name}: {outcome}", 3000), blocks


# ----- modals --------------------------------------------------------------------------------------
def modal(
    callback_id: str, title: str, blocks: Blocks, *, metadata: str = "", submit: str | None = "Submit"
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": callback_id,
        "title": plain(title, MODAL_TITLE),
        "close": plain("Cancel", 24),
        "blocks": blocks[:100],
        "private_metadata": metadata,
    }
    if submit:
        view["submit"] = plain(submit, 24)
    return view


def loading_modal() -> dict[str, Any]:
    return modal(V_INFO, "Loading…", [section("Loading…")], submit=None)


def info_modal(title: str, text: str) -> dict[str, Any]:
    return modal(V_INFO, title, [section(escape(text))], submit=None)


def field_block_id(index: int) -> str:
    return f"f{index}"


def _field_input(index: int, f: UserInputField) -> dict[str, Any]:
    action = "v"
    element: dict[str, Any]
    if f.field_type == "bool":
        element = {
            "type": "checkboxes",
            "action_id": action,
            "options": [{"text": plain("Yes", OPTION_TEXT), "value": "true"}],
        }
        if f.value is True:
            element["initial_options"] = element["options"]
    elif f.allowed_values and len(f.allowed_values) <= 100:
        options = [
            {"text": plain(as_text(v) or " ", OPTION_TEXT), "value": str(i)} for i, v in enumerate(f.allowed_values)
        ]
        element = {
            "type": "static_select",
            "action_id": action,
            "options": options,
            "placeholder": plain(f"Choose {f.name}", 150),
        }
        if f.value in f.allowed_values:
            element["initial_option"] = options[f.allowed_values.index(f.value)]
    elif f.field_type in ("int", "float"):
        element = {"type": "number_input", "action_id": action, "is_decimal_allowed": f.field_type == "float"}
        if f.value is not None:
            element["initial_value"] = str(f.value)
    else:
        element = {
            "type": "plain_text_input",
            "action_id": action,
            "max_length": TEXT_INPUT_MAX,
            "multiline": f.field_type in ("list", "dict"),
        }
        if f.value is not None:
            element["initial_value"] = truncate(as_text(f.value), TEXT_INPUT_MAX)
    hint = f.description or ""
    if f.field_type in ("list", "dict"):
        hint = (hint + " " if hint else "") + f"(JSON {f.field_type})"
    if f.allowed_values and len(f.allowed_values) > 100:
        hint = (hint + " " if hint else "") + "One of: " + ", ".join(as_text(v) for v in f.allowed_values)
    block: dict[str, Any] = {
        "type": "input",
        "block_id": field_block_id(index),
        "label": plain(f.name, INPUT_LABEL),
        "element": element,
        "optional": (not f.required) or f.field_type == "bool",
    }
    if hint:
        block["hint"] = plain(hint, INPUT_HINT)
    return block


def input_modal(
    schema: list[UserInputField], *, callback_id: str, metadata: str, message: str | None, title: str = "Provide input"
) -> dict[str, Any]:
    """A form generated from a user-input schema (str: text; int/float: number; bool: checkbox;
    allowed values: select; description: hint)."""
    blocks: Blocks = []
    if message:
        blocks.append(section(quote(message, SECTION_TEXT)))
    if not schema:
        blocks.append(
            {
                "type": "input",
                "block_id": "free",
                "label": plain("Values (JSON object)"),
                "element": {"type": "plain_text_input", "action_id": "v", "multiline": True},
            }
        )
    blocks.extend(_field_input(i, f) for i, f in enumerate(schema[:98]))
    return modal(callback_id, title, blocks, metadata=metadata)


def read_inputs(schema: list[UserInputField], values: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Form state (`view.state.values`) back into raw field values (strings stay strings; kern coerces)."""
    out: dict[str, Any] = {}
    for index, f in enumerate(schema):
        state = values.get(field_block_id(index), {}).get("v", {})
        kind = state.get("type")
        if kind == "checkboxes":
            out[f.name] = bool(state.get("selected_options"))
        elif kind == "static_select":
            option = state.get("selected_option")
            out[f.name] = f.allowed_values[int(option["value"])] if option and f.allowed_values else None
        elif kind in ("number_input", "plain_text_input"):
            raw = state.get("value")
            if raw is not None and f.field_type in ("list", "dict"):
                import json

                try:
                    raw = json.loads(raw)
                except ValueError:
                    pass  # kern reports the wrong type by field name
            out[f.name] = raw
    return out


# ----- an agent's questions (a user-feedback tool call) ------------------------------------------------
QUESTIONS_SHOWN = 1500  # per call on the card: a pause may show 12 calls within the ~12k message budget
MAX_QUESTIONS = 98  # a modal holds 100 blocks: an intro, the questions, a note on any left out
MAX_OPTIONS = 10000  # 100 option groups of 100


def questions_text(questions: list[AskUserQuestion]) -> str:
    """The questions and their options as the card shows them (mrkdwn, escaped, within the section limit)."""
    lines: list[str] = []
    for q in questions:
        how = "choose any" if q.multi_select else "choose one"
        lines.append(f"*{escape(truncate(q.header, 100))}* · {escape(truncate(q.question, 500))} _({how})_")
        for o in q.options:
            desc = f" — {escape(truncate(o.description, 200))}" if o.description else ""
            lines.append(f"   • {escape(truncate(o.label, 200))}{desc}")
    return truncate("\n".join(lines) or "_no questions_", QUESTIONS_SHOWN)


def question_block_id(index: int) -> str:
    return f"q{index}"


def _question_input(index: int, q: AskUserQuestion) -> dict[str, Any]:
    options: list[dict[str, Any]] = []
    for i, o in enumerate(q.options[:MAX_OPTIONS]):
        option: dict[str, Any] = {"text": plain(o.label, OPTION_TEXT), "value": str(i)}
        if o.description:
            option["description"] = plain(o.description, OPTION_TEXT)
        options.append(option)
    element: dict[str, Any] = {"action_id": "v"}
    if q.multi_select and len(options) <= 10:
        element.update(type="checkboxes", options=options)
    else:
        element["type"] = "multi_static_select" if q.multi_select else "static_select"
        element["placeholder"] = plain("Choose options" if q.multi_select else "Choose an option", 150)
        if len(options) <= 100:
            element["options"] = options
        else:
            element["option_groups"] = [
                {"label": plain(f"Options {i + 1}-{min(i + 100, len(options))}", 75), "options": options[i : i + 100]}
                for i in range(0, len(options), 100)
            ]
    return {
        "type": "input",
        "block_id": question_block_id(index),
        "label": plain(q.question, INPUT_LABEL),
        "hint": plain(f"{q.header} · " + ("choose one or more" if q.multi_select else "choose one"), INPUT_HINT),
        "element": element,
    }


def feedback_modal(questions: list[AskUserQuestion], *, metadata: str, intro: str) -> dict[str, Any]:
    """A form generated from a user-feedback schema: a select per single-select question, checkboxes (or,
    past 10 options, a multi-select) per multi-select question. Read back with `read_feedback`."""
    blocks: Blocks = [section(intro)]
    blocks.extend(_question_input(i, q) for i, q in enumerate(questions[:MAX_QUESTIONS]))
    if len(questions) > MAX_QUESTIONS:
        blocks.append(context(f"{len(questions) - MAX_QUESTIONS} more questions do not fit in a form; reject instead."))
    return modal(V_TOOL_FEEDBACK, "Answer the agent", blocks, metadata=metadata, submit="Answer")


def read_feedback(
    questions: list[AskUserQuestion], values: dict[str, dict[str, Any]]
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Form state back into `{question: [labels]}` for `provide_user_feedback`, with an inline error per
    question block left unanswered (or, from a forged payload, over-answered). A value that is no option's
    index is passed on as is, for kern to refuse."""
    answers: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    for index, q in enumerate(questions):
        state = values.get(question_block_id(index), {}).get("v", {})
        picked = state.get("selected_options") or ([state["selected_option"]] if state.get("selected_option") else [])
        labels = []
        for option in picked:
            value = str(option.get("value", ""))
            labels.append(q.options[int(value)].label if value.isdigit() and int(value) < len(q.options) else value)
        answers[q.question] = labels
        if index >= MAX_QUESTIONS:  # not in the form: no block to show an error under
            errors[question_block_id(0)] = f"{len(questions) - MAX_QUESTIONS} questions could not be shown; reject."
        elif not labels:
            errors[question_block_id(index)] = "Choose an option."
        elif len(labels) > 1 and not q.multi_select:
            errors[question_block_id(index)] = "Choose only one option."
    return answers, errors


def feedback_summary(questions: list[AskUserQuestion], answers: dict[str, list[str]]) -> str:
    """The answers as the decided message shows them: `*header*: label, label; …`."""
    parts = [
        f"*{escape(truncate(q.header, 100))}*: {escape(truncate(', '.join(answers.get(q.question, [])), 300))}"
        for q in questions
    ]
    return truncate("; ".join(parts), 1200)


def text_modal(
    callback_id: str,
    title: str,
    *,
    metadata: str,
    label: str,
    initial: str | None = None,
    intro: str | None = None,
    submit: str = "Submit",
    optional: bool = False,
) -> dict[str, Any]:
    """A modal with one multi-line text input (edit, feedback, note, external result)."""
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": "v",
        "multiline": True,
        "max_length": TEXT_INPUT_MAX,
    }
    blocks: Blocks = []
    if intro:
        blocks.append(section(intro))
    if initial:
        element["initial_value"] = truncate(initial, TEXT_INPUT_MAX)
        if len(initial) > TEXT_INPUT_MAX:
            blocks.append(
                context(
                    f"The output has {len(initial)} characters; only the first {TEXT_INPUT_MAX} fit "
                    "here, and what you submit replaces all of it."
                )
            )
    blocks.append(
        {
            "type": "input",
            "block_id": "text",
            "label": plain(label, INPUT_LABEL),
            "element": element,
            "optional": optional,
        }
    )
    return modal(callback_id, title, blocks, metadata=metadata, submit=submit)


def full_text_modal(title: str, text: str) -> dict[str, Any]:
    """Long text split over sections, within the modal's block and size limits."""
    chunk = 2900
    body = escape(text)
    parts = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [" "]
    blocks: Blocks = [
        {"type": "section", "text": md("```" + p.replace("```", "`\u200b``") + "```")} for p in parts[:60]
    ]
    if len(parts) > 60:
        blocks.append(context(f"{len(body) - 60 * chunk} more characters are not shown."))
    return modal(V_INFO, title, blocks, submit=None)
