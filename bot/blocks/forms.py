"""Modals: forms generated from a user-input schema or an agent's questions, text editors, read-only
views, and reading their submitted state back."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from bot.blocks.kit import (
    V_APPROVE,
    V_FEEDBACK,
    V_INFO,
    V_TOOL_FEEDBACK,
    Blocks,
    context,
    humanize,
    plain,
    rejecting_cancels,
    retries_used_up,
    section,
    sent_back,
)
from bot.blocks.text import (
    INPUT_HINT,
    INPUT_LABEL,
    MODAL_TITLE,
    OPTION_TEXT,
    SECTION_TEXT,
    TEXT_INPUT_MAX,
    as_text,
    clip,
    cut,
    escape,
    quote,
    shown,
    truncate,
)
from kern.run import requirement as kinds
from kern.workflow.types import OnReject, UserInputField

if TYPE_CHECKING:
    from kern.run.requirement import StepRequirement
    from kern.tools.user_feedback import AskUserQuestion


def modal(
    callback_id: str, title: str, blocks: Blocks, *, metadata: str = "", submit: str | None = "Submit"
) -> dict[str, Any]:
    """A modal view; without `submit` it is read-only and its one button says Close."""
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": callback_id,
        "title": plain(title, MODAL_TITLE),
        "close": plain("Cancel" if submit else "Close", 24),
        "blocks": blocks[:100],
        "private_metadata": metadata,
    }
    if submit:
        view["submit"] = plain(submit, 24)
    return view


def loading_modal() -> dict[str, Any]:
    return modal(V_INFO, "Loading…", [section("Loading…")], submit=None)


def info_modal(title: str, text: str) -> dict[str, Any]:
    """A modal that only tells something: `text` is mrkdwn (the bot's own words, mentions kept live; text
    from people in it escaped where it was put in)."""
    return modal(V_INFO, title, [section(text)], submit=None)


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
            "placeholder": plain(f"Choose {humanize(f.name).lower()}", 150),
        }
        if f.value in f.allowed_values:
            element["initial_option"] = options[f.allowed_values.index(f.value)]
    elif f.field_type in ("int", "float"):
        element = {"type": "number_input", "action_id": action, "is_decimal_allowed": f.field_type == "float"}
        for key, bound in (("min_value", f.ge), ("max_value", f.le)):  # Slack keeps the value within them
            if bound is not None:
                whole = math.ceil(bound) if key == "min_value" else math.floor(bound)
                element[key] = f"{bound:g}" if f.field_type == "float" else str(whole)
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
        "label": plain(humanize(f.name), INPUT_LABEL),
        "element": element,
        "optional": (not f.required) or f.field_type == "bool",
    }
    if hint:
        block["hint"] = plain(hint, INPUT_HINT)
    return block


def form_title(name: str, prefix: str = "") -> str:
    """A modal title from a step or tool name ("Edit: Draft"), within Slack's 24 characters."""
    return truncate(prefix + humanize(name), MODAL_TITLE)


def field_error(name: str, problem: str) -> str:
    """An inline form error that names the field: "Title is required", "Pages: expected int, got 'x'"."""
    if problem.startswith("required"):
        return f"{humanize(name)} is required{problem.removeprefix('required')}."
    return f"{humanize(name)}: {problem}"


def input_modal(
    schema: list[UserInputField], *, callback_id: str, metadata: str, message: str | None, title: str
) -> dict[str, Any]:
    """A form generated from a user-input schema (str: text; int/float: number; bool: checkbox;
    allowed values: select; description: hint; field names become labels, "due_date" -> "Due date")."""
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
                try:
                    raw = json.loads(raw)
                except ValueError:
                    pass  # kern reports the wrong type by field name
            out[f.name] = raw
    return out


# an agent's questions (a user-feedback tool call) ------------------------------------------------
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
    return clip("\n".join(lines) or "_no questions_", QUESTIONS_SHOWN)


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
    return clip("; ".join(parts), 1200)


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


def feedback_form(req: StepRequirement) -> dict[str, Any]:
    """A rejection with its reason: "Reject…" on a confirmation (the reason optional) and "Reject with
    feedback" on an output or iteration review (what should change); where rejecting cancels the run the
    form says so. Submitted as `V_FEEDBACK`: the reason is kern's `rejection_feedback` and the audit log's
    note."""
    return note_form(req, approve=False)


def approve_form(req: StepRequirement) -> dict[str, Any]:
    """ "Approve with comment…": an approval with an optional comment, submitted as `V_APPROVE` (the comment
    is the audit log's note, shown on the decided message)."""
    return note_form(req, approve=True)


def note_form(req: StepRequirement, *, approve: bool) -> dict[str, Any]:
    """The one form of a decision with a note on a pause: an approval's comment or a rejection's reason."""
    if approve:
        return text_modal(
            V_APPROVE,
            form_title(req.step_name, "Approve: "),
            metadata=req.requirement_id,
            label="Comment",  # Slack adds "(optional)" to an optional input's label
            submit="Approve",
            optional=True,
        )
    if rejecting_cancels(req):
        intro = ":warning: *Rejecting cancels the run.*"
        if retries_used_up(req):
            intro = (
                f":warning: *Retries used up: rejecting cancels the run.* The step was {sent_back(req)}, the most "
                "allowed."
            )
        return text_modal(
            V_FEEDBACK,
            form_title(req.step_name, "Reject: "),
            metadata=req.requirement_id,
            label="Why?",
            intro=intro,
            submit="Reject and cancel",
            optional=True,
        )
    if req.kind == kinds.CONFIRMATION:
        retried = req.on_reject is OnReject.retry
        return text_modal(
            V_FEEDBACK,
            form_title(req.step_name, "Reject: "),
            metadata=req.requirement_id,
            label="Reason",
            intro="The step runs with your reason as its feedback." if retried else None,
            submit="Reject",
            optional=True,
        )
    return text_modal(
        V_FEEDBACK,
        form_title(req.step_name, "Send back: "),
        metadata=req.requirement_id,
        label="What should change?",
        submit="Reject",
    )


def full_text_modal(title: str, text: str) -> dict[str, Any]:
    """Long text split over sections, within the modal's block and size limits, each shown as written: a
    code block, or plain_text where a code block cannot hold the part (see `bot.blocks.text.shown`)."""
    parts: list[str] = []
    rest = text
    while rest and len(parts) <= 60:
        head, _ = cut(rest, 2900)
        parts.append(head)
        rest = rest[len(head) :]
    blocks: Blocks = [{"type": "section", "text": shown(p, 3000, block=True)} for p in parts[:60]] or [section(" ")]
    if len(parts) > 60 or rest:
        hidden = len(text) - sum(len(p) for p in parts[:60])
        blocks.append(context(f"About {hidden:,} more characters are not shown."))
    return modal(V_INFO, title, blocks, submit=None)
