"""`ErrorRequirement`: the pause of a step that failed with `on_error="pause"`.

In kern an error pause is a `StepRequirement` of kind `error` (the run output lists it in
`steps_with_errors`, resolved with `retry()` or `skip()`). `ErrorRequirement` is that same record with the
documented constructor, `ErrorRequirement(step_id, step_name=None, step_index=None, error_message="",
error_type=None, retry_count=0, decision=None, step_input=None)`, and its `to_dict` / `from_dict`.
"""

from __future__ import annotations

from typing import Any

from kern.run.requirement import ERROR, LOADED_AS, STEP_REQUIREMENT, StepRequirement, _split_error

_DECISIONS = ("retry", "skip")


class ErrorRequirement(StepRequirement):
    """A failed step waiting for a person to choose `retry()` or `skip()`; `decision` says which."""

    def __init__(
        self,
        step_id: str | None = None,
        step_name: str | None = None,
        step_index: int | None = None,
        error_message: str = "",
        error_type: str | None = None,
        retry_count: int = 0,
        decision: str | None = None,
        step_input: Any = None,
        **fields: Any,
    ) -> None:
        if decision is not None and decision not in _DECISIONS:
            raise ValueError(f"ErrorRequirement decision must be one of {', '.join(_DECISIONS)}; got {decision!r}")
        if step_id is not None:
            fields.setdefault("step_path", step_id)
        recorded = fields.pop("error", None)  # the engine's record ("ValueError: bad input") when it has one
        super().__init__(
            step_name=step_name or step_id or "",
            kind=ERROR,
            error=recorded if recorded is not None else error_message,
            retry_count=retry_count,
            error_action=decision,
            **fields,
        )
        if step_id is not None:  # otherwise derived from the path and name, like every requirement's
            self.step_id = step_id
        if step_index is not None:
            self.step_index = step_index
        self.error_type = error_type
        self.step_input = step_input

    @property
    def error_message(self) -> str:
        """The failed step's exception text, without the class name (that is `error_type`)."""
        return _split_error(self.error)[1] or ""

    # The documented "retry"/"skip" field deliberately shadows StepRequirement's older `decision()` alias.
    @property
    def decision(self) -> str | None:  # type: ignore[override]
        """`"retry"`, `"skip"`, or None while undecided."""
        return self.error_action

    @property
    def needs_decision(self) -> bool:
        """True while neither `retry()` nor `skip()` was chosen (and no deadline decided)."""
        return not self.is_resolved

    @property
    def should_retry(self) -> bool:
        """True when the decision is to run the step again."""
        return self.error_action == "retry"

    @property
    def should_skip(self) -> bool:
        """True when the decision is to skip the step and go on."""
        return self.error_action == "skip"

    def to_dict(self) -> dict[str, Any]:
        """The stored form (as every requirement's) with the documented fields beside it: `step_id`,
        `step_index`, `error_message`, `error_type`, `decision`, `step_input` (None ones left out)."""
        documented = {
            "step_id": self.step_id,
            "step_index": self.step_index,
            "error_message": self.error_message,
            "error_type": self.error_type,
            "decision": self.decision,
            "step_input": self.step_input,
        }
        return {**STEP_REQUIREMENT.dump(self), **{k: v for k, v in documented.items() if v is not None}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ErrorRequirement:
        """From `to_dict()` data (kern's stored form, which has a `kind`), or from the documented form."""
        if "kind" in data:
            return STEP_REQUIREMENT.load({**data, "kind": ERROR})  # type: ignore[return-value]
        kept = {k: data[k] for k in ("requirement_id", "step_path", "message") if data.get(k) is not None}
        return cls(
            step_id=data.get("step_id") or (None if data.get("step_path") else data.get("step_name")),
            step_name=data.get("step_name"),
            step_index=data.get("step_index"),
            error_message=data.get("error_message", data.get("error")) or "",
            error_type=data.get("error_type"),
            retry_count=data.get("retry_count", 0),
            decision=data.get("decision", data.get("error_action")),
            step_input=data.get("step_input"),
            **kept,
        )


LOADED_AS[ERROR] = ErrorRequirement  # every stored error pause loads as one

__all__ = ["ErrorRequirement"]
