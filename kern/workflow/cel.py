"""CEL (Common Expression Language) expressions as Condition evaluators, Router selectors and Loop end
conditions.

A string given where a function is expected is a CEL expression. It is compiled when the primitive is
built (a malformed one is a `ValueError` naming it there) and evaluated against these variables:

- Condition `evaluator` and Router `selector`: `input` (the run input as text), `previous_step_content`
  (text), `previous_step_outputs` (step name -> content as text), `additional_data`, `session_state`;
  a Router's also gets `step_choices` (the names of its choices) and must give a choice's name.
- Loop `end_condition`: `current_iteration` (1-based, the iteration just finished), `max_iterations`,
  `all_success`, `last_step_content` (text) and `step_outputs` (step name -> content as text) of that
  iteration.

A run whose expression fails to evaluate (an unknown variable, a missing key) ends with status ERROR,
like a failing evaluator function.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kern.workflow.types import StepInput, StepOutput


class CelExpression:
    """One compiled CEL expression, with what it belongs to (for error messages)."""

    def __init__(self, source: str, owner: str) -> None:
        import celpy  # on first use: the parser takes a moment to build

        self.source = source
        self.owner = owner
        try:
            environment = celpy.Environment()
            self._program = environment.program(environment.compile(source))
        except Exception as exc:  # celpy's parse errors carry the position in their text
            raise ValueError(f"{owner}: invalid CEL expression {source!r}: {_short(exc)}") from None

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        """The expression's value (CEL types are Python subclasses: bool, int, str, ...)."""
        from celpy.evaluation import CELEvalError

        try:
            result = self._program.evaluate({name: _to_cel(value) for name, value in variables.items()})
        except Exception as exc:
            raise ValueError(f"{self.owner}: CEL expression {self.source!r} failed: {_short(exc)}") from None
        if isinstance(result, CELEvalError):
            raise ValueError(f"{self.owner}: CEL expression {self.source!r} failed: {_short(result)}")
        return result

    def is_true(self, variables: Mapping[str, Any]) -> bool:
        """The value as a bool (a non-bool value counts by its truth, as the reference API does)."""
        return bool(self.evaluate(variables))

    def __repr__(self) -> str:
        return f"CelExpression({self.source!r})"


def step_input_variables(step_input: StepInput) -> dict[str, Any]:
    """The variables of a Condition evaluator or Router selector expression."""
    outputs = step_input.previous_step_outputs or {}
    return {
        "input": step_input.get_input_as_string() if step_input.input is not None else "",
        "previous_step_content": _as_text(step_input.previous_step_content),
        "previous_step_outputs": {name: _content_text(out) for name, out in outputs.items()},
        "additional_data": step_input.additional_data or {},
        "session_state": step_input.session_state or {},
    }


def iteration_variables(outputs: list[StepOutput], iteration: int, max_iterations: int) -> dict[str, Any]:
    """The variables of a Loop end condition expression, after iteration `iteration` (1-based)."""
    contents = {(out.step_name or f"step_{i}"): _content_text(out) for i, out in enumerate(outputs)}
    return {
        "current_iteration": iteration,
        "max_iterations": max_iterations,
        "all_success": all(out.success for out in outputs),
        "last_step_content": _content_text(outputs[-1]) if outputs else "",
        "step_outputs": contents,
    }


def _content_text(output: StepOutput) -> str:
    return str(output.content) if output.content else ""


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "model_dump_json"):
        return str(value.model_dump_json())
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return str(value)


def _to_cel(value: Any) -> Any:
    """A Python value as a CEL value; anything that is not JSON-like becomes its text."""
    from celpy import celtypes

    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        return celtypes.IntType(value)
    if isinstance(value, float):
        return celtypes.DoubleType(value)
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, (list, tuple)):
        return celtypes.ListType([_to_cel(item) for item in value])
    if isinstance(value, Mapping):
        return celtypes.MapType({celtypes.StringType(str(k)): _to_cel(v) for k, v in value.items()})
    return celtypes.StringType(str(value))


def _short(exc: BaseException) -> str:
    """An error's first line, without celpy's dump of every name it knows."""
    text = str(exc.args[0]) if exc.args else str(exc)
    text = text.split(" (in activation", 1)[0]
    return " ".join(text.split())[:300]
