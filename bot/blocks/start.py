"""Start forms: a modal generated from a workflow's `input_schema` (a pydantic model), the picker of
workflows a person may start, and reading both back.

Each model field becomes one input block (`start_<field>`): str a text input, int/float a number input,
bool a checkbox, Enum/Literal a select, a list of those a multi-select, other lists one item per line,
`date` a date picker, anything else JSON. Defaults are initial values, descriptions hints, titles (or the
humanized field name) labels. The model itself validates what comes back; `form_errors` maps its errors
to the blocks they belong to (Slack shows them inline under those blocks).
"""

from __future__ import annotations

import datetime
import enum
import json
import types
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from bot.blocks.forms import modal
from bot.blocks.kit import V_START, V_START_PICK, Blocks, humanize, plain, section
from bot.blocks.text import INPUT_HINT, INPUT_LABEL, OPTION_TEXT, PLACEHOLDER, TEXT_INPUT_MAX, as_text, escape, truncate

WORKFLOW_BLOCK, CHANNEL_BLOCK, FREE_BLOCK = "start_wf", "start_ch", "start_input"
MAX_CHOICES = 100  # a select's options; more and the field is a text input naming them
MAX_FIELDS = 98  # a modal holds 100 blocks: an intro, the fields


@dataclass(frozen=True)
class FormField:
    """One model field as the form shows it. `kind`: text, number, decimal, bool, select, multi_select,
    lines, date or json."""

    name: str
    kind: str
    label: str
    required: bool
    default: Any = None
    hint: str = ""
    choices: tuple[Any, ...] = ()
    limits: tuple[tuple[str, Any], ...] = ()  # min_length, max_length, ge, le, gt, lt as the model declares
    key: str = ""  # the key the model validates (its alias, if it has one); the name otherwise

    @property
    def block_id(self) -> str:
        return f"start_{self.name}"

    def limit(self, key: str) -> Any:
        return dict(self.limits).get(key)


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """The type inside `X | None` / `Optional[X]`, and whether None was allowed."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _choices(tp: Any) -> tuple[Any, ...] | None:
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tuple(tp)
    if get_origin(tp) is Literal:
        return get_args(tp)
    return None


def _kind(tp: Any) -> tuple[str, tuple[Any, ...]]:
    choices = _choices(tp)
    if choices is not None:
        return ("select", choices) if len(choices) <= MAX_CHOICES else ("text", choices)
    if tp is bool:
        return "bool", ()
    if tp is int:
        return "number", ()
    if tp is float:
        return "decimal", ()
    if tp is str:
        return "text", ()
    if tp is datetime.date:
        return "date", ()
    if get_origin(tp) in (list, set, tuple, frozenset):
        inner = (get_args(tp) or (str,))[0]
        choices = _choices(inner)
        if choices is not None and len(choices) <= MAX_CHOICES:
            return "multi_select", choices
        if inner in (str, int, float):
            return "lines", ()
    return "json", ()


def _default(info: FieldInfo) -> Any:
    if info.default is not PydanticUndefined:
        return info.default
    if info.default_factory is not None:
        try:
            return info.default_factory()  # type: ignore[call-arg]
        except TypeError:  # a factory that wants the validated data: no initial value
            return None
    return None


def _limits(info: FieldInfo) -> tuple[tuple[str, Any], ...]:
    found = []
    for meta in info.metadata:
        for key in ("min_length", "max_length", "ge", "le", "gt", "lt"):
            value = getattr(meta, key, None)
            if value is not None:
                found.append((key, value))
    return tuple(found)


def form_fields(model: type[BaseModel]) -> list[FormField]:
    """The model's fields as form fields, in declaration order."""
    fields = []
    for name, info in model.model_fields.items():
        tp, optional = _unwrap(info.annotation)
        kind, choices = _kind(tp)
        hint = info.description or ""
        if kind == "text" and choices:
            hint = (hint + " " if hint else "") + "One of: " + ", ".join(as_text(_plain(c)) for c in choices)
        elif kind == "lines":
            hint = (hint + " " if hint else "") + "(one per line)"
        elif kind == "json":
            hint = (hint + " " if hint else "") + "(JSON)"
        fields.append(
            FormField(
                name=name,
                key=info.validation_alias if isinstance(info.validation_alias, str) else (info.alias or name),
                kind=kind,
                label=info.title or humanize(name),
                required=info.is_required() and not optional,
                default=_default(info),
                hint=hint,
                choices=choices,
                limits=_limits(info),
            )
        )
    return fields


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _option(index: int, choice: Any) -> dict[str, Any]:
    return {"text": plain(str(_plain(choice)), OPTION_TEXT), "value": str(index)}


def _element(f: FormField) -> dict[str, Any]:
    el: dict[str, Any] = {"action_id": "v"}
    default = f.default
    if f.kind == "bool":
        el.update(type="checkboxes", options=[{"text": plain("Yes", OPTION_TEXT), "value": "true"}])
        if default is True:
            el["initial_options"] = el["options"]
    elif f.kind in ("select", "multi_select"):
        options = [_option(i, c) for i, c in enumerate(f.choices)]
        many = f.kind == "multi_select"
        el.update(
            type="multi_static_select" if many else "static_select",
            options=options,
            placeholder=plain("Choose options" if many else "Choose one", PLACEHOLDER),
        )
        picked = list(default or []) if many else ([default] if default is not None else [])
        initial = [options[f.choices.index(c)] for c in picked if c in f.choices]
        if initial:
            el["initial_options" if many else "initial_option"] = initial if many else initial[0]
    elif f.kind in ("number", "decimal"):
        el.update(type="number_input", is_decimal_allowed=f.kind == "decimal")
        low, high = f.limit("ge"), f.limit("le")
        if low is not None:
            el["min_value"] = str(low)
        if high is not None:
            el["max_value"] = str(high)
        if default is not None:
            el["initial_value"] = str(default)
    elif f.kind == "date":
        el["type"] = "datepicker"
        if isinstance(default, datetime.date):
            el["initial_date"] = default.isoformat()
    else:
        el.update(type="plain_text_input", multiline=f.kind in ("lines", "json"))
        longest = f.limit("max_length")
        el["max_length"] = min(int(longest), TEXT_INPUT_MAX) if f.kind == "text" and longest else TEXT_INPUT_MAX
        if f.kind == "text" and f.limit("min_length"):
            el["min_length"] = min(int(f.limit("min_length")), el["max_length"])
        if default not in (None, "", [], {}):
            shown = "\n".join(map(str, default)) if f.kind == "lines" else as_text(_plain(default))
            el["initial_value"] = truncate(shown, el["max_length"])
    return el


def _input_block(f: FormField) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "input",
        "block_id": f.block_id,
        "label": plain(f.label, INPUT_LABEL),
        "element": _element(f),
        "optional": not f.required or f.kind == "bool",
    }
    if f.hint:
        block["hint"] = plain(f.hint, INPUT_HINT)
    return block


def start_modal(workflow: str, description: str, model: type[BaseModel] | None, *, metadata: str) -> dict[str, Any]:
    """The form that starts `workflow`: one input per field of `model`, or one text input without one."""
    blocks: Blocks = []
    if description:
        blocks.append(section(escape(truncate(description, 2000))))
    if model is None:
        blocks.append(
            {
                "type": "input",
                "block_id": FREE_BLOCK,
                "label": plain("Input"),
                "element": {"type": "plain_text_input", "action_id": "v", "multiline": True, "max_length": 3000},
                "optional": True,
                "hint": plain("What the workflow starts with; leave empty for none.", INPUT_HINT),
            }
        )
    else:
        blocks.extend(_input_block(f) for f in form_fields(model)[:MAX_FIELDS])
    return modal(V_START, f"Run {workflow}", blocks, metadata=metadata, submit="Start")


def read_start(model: type[BaseModel] | None, values: dict[str, dict[str, Any]]) -> Any:
    """The submitted form as the workflow's raw input: a dict of field values for `model` (empty and
    unanswered fields left out, so defaults apply and required ones are reported), or the free text."""
    if model is None:
        return str(values.get(FREE_BLOCK, {}).get("v", {}).get("value") or "").strip()
    raw: dict[str, Any] = {}
    for f in form_fields(model)[:MAX_FIELDS]:
        state = values.get(f.block_id, {}).get("v", {})
        value = _read(f, state)
        if value is not None:
            raw[f.key or f.name] = value
    return raw


def _pick(f: FormField, option: dict[str, Any]) -> Any:
    value = str(option.get("value", ""))
    return _plain(f.choices[int(value)]) if value.isdigit() and int(value) < len(f.choices) else value


def _read(f: FormField, state: dict[str, Any]) -> Any:
    if f.kind == "bool":
        return bool(state.get("selected_options"))
    if f.kind == "select":
        option = state.get("selected_option")
        return _pick(f, option) if option else None
    if f.kind == "multi_select":
        if "selected_options" not in state:
            return None
        return [_pick(f, o) for o in state["selected_options"] or []]
    if f.kind == "date":
        return state.get("selected_date") or None
    text = str(state.get("value") or "")
    if not text.strip():
        return None
    if f.kind == "lines":
        return [line.strip() for line in text.splitlines() if line.strip()]
    if f.kind == "json":
        try:
            return json.loads(text)
        except ValueError:
            return text  # the model reports the wrong type under this field
    return text if f.kind == "text" else text.strip()


def form_summary(model: type[BaseModel], value: BaseModel) -> str:
    """A validated start form as the run card shows it: one `Label: value` line per field."""
    lines = []
    for f in form_fields(model):
        shown = getattr(value, f.name, None)
        if isinstance(shown, (list, tuple, set, frozenset)):
            shown = ", ".join(str(_plain(v)) for v in shown) or "none"
        elif isinstance(shown, bool):
            shown = "yes" if shown else "no"
        elif shown is None:
            shown = "none"
        lines.append(f"{f.label}: {_plain(shown)}")
    return "\n".join(lines)


_SAMPLES = {
    "text": "text",
    "number": 1,
    "decimal": 1.5,
    "bool": True,
    "lines": ["text"],
    "date": "2026-01-31",
    "json": {},
}


def json_shape(model: type[BaseModel]) -> str:
    """The JSON object `model` reads, with a sample value per field (its default, its first choice, or one
    of its type), for people who type a start form's input inline: `{"topic": "…", "depth": "quick"}`."""
    sample: dict[str, Any] = {}
    for f in form_fields(model)[:MAX_FIELDS]:
        value: Any = _plain(f.default) if f.default not in (None, [], {}) else None
        if value is None and f.choices:
            value = _plain(f.choices[0]) if f.kind != "multi_select" else [_plain(f.choices[0])]
        if isinstance(value, (list, tuple, set, frozenset)):
            value = [_plain(v) for v in value]
        if value is None and f.kind in ("number", "decimal"):
            value = f.limit("ge") if f.limit("ge") is not None else f.limit("le")
        if value is None or not isinstance(value, (str, int, float, bool, list, dict)):
            value = _SAMPLES.get(f.kind, "text")
        sample[f.key or f.name] = value
    return truncate(json.dumps(sample, ensure_ascii=False), 1500)


def first_block(model: type[BaseModel] | None) -> str:
    """The block an error about the whole form goes under: the form's first input."""
    fields = form_fields(model)[:1] if model is not None else []
    return fields[0].block_id if fields else FREE_BLOCK


def form_errors(model: type[BaseModel] | None, error: ValueError) -> dict[str, str]:
    """`response_action: errors` for a failed validation: each error under its field's block (errors of
    the whole model, or of a field the form does not show, under the first input block)."""
    if model is None:
        return {FREE_BLOCK: truncate(str(error), 300)}
    shown = {f.key or f.name: f.block_id for f in form_fields(model)[:MAX_FIELDS]}
    first = first_block(model)
    errors: dict[str, str] = {}
    items = error.errors() if isinstance(error, ValidationError) else [{"loc": (), "msg": str(error)}]
    for item in items:
        loc = item.get("loc") or ()
        block = shown.get(str(loc[0])) if loc else None
        msg = "This field is required." if item.get("type") == "missing" else str(item.get("msg", "Invalid value."))
        if block is None:
            block = first
            if loc:
                msg = f"{'.'.join(map(str, loc))}: {msg}"
        errors[block] = truncate(f"{errors[block]} {msg}" if block in errors else msg, 300)
    return errors


def picker_modal(
    workflows: list[tuple[str, str]], *, metadata: str, ask_channel: bool, channel: str | None = None
) -> dict[str, Any]:
    """Choose a workflow (name, description) to start, and where its card goes when that is not known
    (a global shortcut has no channel). Submitting it ("Next") shows the workflow's form."""
    if not workflows:
        return modal(V_START_PICK, "Run a workflow", [section("There is no workflow you may start.")], submit=None)
    options = []
    for name, description in workflows[:MAX_CHOICES]:
        option: dict[str, Any] = {"text": plain(name, OPTION_TEXT), "value": name}
        if description:
            option["description"] = plain(description, OPTION_TEXT)
        options.append(option)
    blocks: Blocks = [
        {
            "type": "input",
            "block_id": WORKFLOW_BLOCK,
            "label": plain("Workflow"),
            "element": {
                "type": "static_select",
                "action_id": "v",
                "options": options,
                "placeholder": plain("Choose a workflow", PLACEHOLDER),
            },
        }
    ]
    if ask_channel:
        element: dict[str, Any] = {
            "type": "conversations_select",
            "action_id": "v",
            "placeholder": plain("Choose a channel", PLACEHOLDER),
            "filter": {"include": ["public", "private"], "exclude_bot_users": True},
        }
        if channel:
            element["initial_conversation"] = channel
        blocks.append(
            {
                "type": "input",
                "block_id": CHANNEL_BLOCK,
                "label": plain("Post the run in"),
                "element": element,
                "hint": plain("The run's card and its pauses go to this channel; invite me there first.", 150),
            }
        )
    return modal(V_START_PICK, "Run a workflow", blocks, metadata=metadata, submit="Next")


def read_picker(values: dict[str, dict[str, Any]]) -> tuple[str, str | None]:
    """The picked workflow's name, and the picked channel (None when the picker did not ask)."""
    option = values.get(WORKFLOW_BLOCK, {}).get("v", {}).get("selected_option") or {}
    channel_state = values.get(CHANNEL_BLOCK)
    channel = (channel_state or {}).get("v", {}).get("selected_conversation") if channel_state else None
    return str(option.get("value", "")), channel
