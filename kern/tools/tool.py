"""`@tool`: a Python function as a tool an agent can call, with optional human gates."""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Callable
from typing import Any, get_type_hints

from pydantic import create_model

from kern._json import to_jsonable
from kern._sync import call_user
from kern.run.injected import declared
from kern.run.values import AskUserQuestion, UserInputField

# Parameters the run fills in (never the model): left out of the tool's schema.
_RUN_VALUES = frozenset({"self", "agent", "run_context", "session_state", "dependencies"})

TOOL_OPTIONS = (
    "name",
    "description",
    "instructions",
    "requires_confirmation",
    "requires_user_input",
    "user_input_fields",
    "external_execution",
)

_JSON_TO_FIELD_TYPE = {
    "string": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "array": "list",
    "object": "dict",
}


def _docstring_parts(doc: str | None) -> tuple[str, dict[str, str]]:
    """(summary, {param: description}) from a Google- or reST-style docstring."""
    if not doc:
        return "", {}
    doc = inspect.cleandoc(doc)
    params: dict[str, str] = {}
    summary_lines: list[str] = []
    section = None
    for line in doc.splitlines():
        stripped = line.strip()
        if re.match(r"^(Args|Arguments|Parameters|Params):\s*$", stripped):
            section = "args"
            continue
        if re.match(r"^(Returns|Return|Raises|Yields|Examples?|Notes?):\s*$", stripped):
            section = "other"
            continue
        rest = re.match(r"^:param\s+(\w+):\s*(.*)$", stripped)
        if rest:
            params[rest.group(1)] = rest.group(2)
            continue
        if section == "args":
            m = re.match(r"^(\w+)\s*(\([^)]*\))?\s*:\s*(.*)$", stripped)
            if m:
                params[m.group(1)] = m.group(3)
            continue
        if section is None:
            summary_lines.append(line)
    return "\n".join(summary_lines).strip(), params


class Tool:
    """A callable tool: its JSON schema (from type hints and docstring), its HITL flags, its function.

    `user_input_fields` are parameters the person fills in; they are hidden from the model's schema.
    """

    def __init__(
        self,
        entrypoint: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        instructions: str | None = None,
        requires_confirmation: bool = False,
        requires_user_input: bool = False,
        user_input_fields: list[str] | None = None,
        external_execution: bool = False,
    ) -> None:
        flags = [
            f
            for f, on in (
                ("requires_confirmation", requires_confirmation),
                ("requires_user_input", requires_user_input),
                ("external_execution", external_execution),
            )
            if on
        ]
        if len(flags) > 1:
            raise ValueError(
                f"A tool takes at most one of requires_confirmation, requires_user_input, "
                f"external_execution; got {', '.join(flags)}."
            )
        self.entrypoint = entrypoint
        self.name = name or entrypoint.__name__
        summary, param_docs = _docstring_parts(entrypoint.__doc__)
        self.description = description or summary or self.name
        self.instructions = instructions
        self.requires_confirmation = requires_confirmation
        self.requires_user_input = requires_user_input
        self.external_execution = external_execution
        self.approval_type: str | None = None  # "required" | "audit", set by @approval
        self.requires_user_feedback = False  # set by UserFeedbackTools' ask_user
        self.delegates = False  # set on a team's delegation tool
        signature = inspect.signature(entrypoint)
        hints = get_type_hints(entrypoint)
        fields: dict[str, Any] = {}
        for pname, param in signature.parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or pname in _RUN_VALUES:
                continue
            annotation = hints.get(pname, Any)
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[pname] = (annotation, default)
        if user_input_fields:
            unknown = [f for f in user_input_fields if f not in fields]
            if unknown:
                raise ValueError(
                    f"Tool {self.name!r}: user_input_fields {unknown} are not parameters of the "
                    f"function (parameters: {', '.join(fields)})."
                )
        elif requires_user_input:
            user_input_fields = list(fields)
        self.user_input_fields = list(user_input_fields or [])
        self._model = create_model(f"{self.name}_args", **fields)
        full = self._model.model_json_schema()
        props = full.get("properties", {})
        for pname, text in param_docs.items():
            if pname in props and text:
                props[pname]["description"] = text
        for prop in props.values():
            prop.pop("title", None)
        self.full_schema = full
        hidden = set(self.user_input_fields)
        self.parameters: dict[str, Any] = {
            "type": "object",
            "properties": {k: v for k, v in props.items() if k not in hidden},
            "required": [r for r in full.get("required", []) if r not in hidden],
        }
        if "$defs" in full:
            self.parameters["$defs"] = full["$defs"]
        self._param_docs = param_docs

    @property
    def requires_hitl(self) -> bool:
        flags = (self.requires_confirmation, self.requires_user_input, self.external_execution)
        return any(flags) or self.requires_user_feedback

    def user_feedback_schema(self, provided_args: dict[str, Any]) -> list[AskUserQuestion]:
        """The questions a tool with `requires_user_feedback` asks (UserFeedbackTools' `ask_user` says)."""
        raise NotImplementedError(f"{self.name} asks no questions")

    def user_input_schema(self, provided_args: dict[str, Any]) -> list[UserInputField]:
        """The fields a person fills in for this call (prefilled with what the model already gave)."""
        props = self.full_schema.get("properties", {})
        required = set(self.full_schema.get("required", []))
        out = []
        for name in self.user_input_fields:
            prop = props.get(name, {})
            field_type = _JSON_TO_FIELD_TYPE.get(prop.get("type", "string"), "str")
            out.append(
                UserInputField(
                    name=name,
                    field_type=field_type,
                    description=self._param_docs.get(name),
                    required=name in required,
                    allowed_values=prop.get("enum"),
                    value=provided_args.get(name, prop.get("default")),
                )
            )
        return out

    def validate_args(self, args: dict[str, Any]) -> dict[str, Any]:
        """Arguments checked and coerced by the schema; a ValueError names what is wrong."""
        return dict(self._model.model_validate(args))

    async def execute(self, args: dict[str, Any], run_values: dict[str, Any] | None = None) -> Any:
        """Run the function (sync ones in a worker thread) with validated arguments, plus those of
        `run_values` (`run_context`, `session_state`, `dependencies`, `agent`) it declares."""
        values = self.validate_args(args)
        for name in declared(self.entrypoint) & _RUN_VALUES:
            if run_values is not None and name in run_values:
                values[name] = run_values[name]
        return await call_user(functools.partial(self.entrypoint, **values))

    def to_openai_chat(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self._full_description(), "parameters": self.parameters},
        }

    def to_openai_responses(self) -> dict[str, Any]:
        return {
            "type": "function",
            "name": self.name,
            "description": self._full_description(),
            "parameters": self.parameters,
        }

    def _full_description(self) -> str:
        return f"{self.description}\n\n{self.instructions}" if self.instructions else self.description

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.entrypoint(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r})"


def tool(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Make a function a `Tool`: `@tool` or `@tool(requires_confirmation=True, ...)`.

    Options: name, description, instructions, requires_confirmation, requires_user_input (with
    user_input_fields), external_execution; at most one of the three flags. Anything else is a
    ValueError listing the valid options.
    """
    unknown = sorted(set(options) - set(TOOL_OPTIONS))
    if unknown:
        raise ValueError(f"@tool got unknown option(s) {', '.join(unknown)}. Valid options: {', '.join(TOOL_OPTIONS)}.")
    if fn is not None:
        return Tool(fn, **options)

    def decorate(f: Callable[..., Any]) -> Tool:
        return Tool(f, **options)

    return decorate


def tool_result_text(value: Any) -> str:
    """A tool's return value as the text a model reads."""
    if isinstance(value, str):
        return value
    return json.dumps(to_jsonable(value))
