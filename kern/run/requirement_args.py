"""The reference API's constructor arguments for a `StepRequirement`, mapped onto kern's fields.

Code written for the reference API builds requirements with flags and per-kind messages:
`StepRequirement(step_id="s1", step_name="deploy", requires_confirmation=True, confirmation_message="Go?")`.
kern stores one `kind` and one `message`; the flags and messages stay readable as properties. This module
turns the documented arguments into kern's, and refuses combinations that say two different things.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kern.run import kinds

# The first flag set decides the kind. A review also sets `requires_confirmation` in the reference API
# (it resolves with confirm/reject), so a review flag is looked at first and confirmation beside it is fine.
KIND_FLAGS: tuple[tuple[str, str], ...] = (
    ("requires_iteration_review", kinds.ITERATION_REVIEW),
    ("requires_output_review", kinds.OUTPUT_REVIEW),
    ("requires_route_selection", kinds.ROUTE_SELECTION),
    ("requires_user_input", kinds.USER_INPUT),
    ("requires_executor_input", kinds.EXECUTOR),
    ("requires_error_resolution", kinds.ERROR),
    ("requires_confirmation", kinds.CONFIRMATION),
)
MESSAGE_ARGS = ("confirmation_message", "user_input_message", "output_review_message")
REVIEWS = (kinds.OUTPUT_REVIEW, kinds.ITERATION_REVIEW)


# Arguments only the documented form uses (kern's own constructor calls never pass them).
DOCUMENTED_ONLY = frozenset(
    {name for name, _ in KIND_FLAGS} | set(MESSAGE_ARGS) | {"is_post_execution", "timeout_at", "step_index"}
)


def documented_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Rewrite `kwargs` (in place) from the documented form into kern's fields and return what must be
    set after construction (`step_index`). `args` are the positional arguments (step_name, kind, ...)."""
    flags = {name: bool(kwargs.pop(name)) for name, _ in KIND_FLAGS if name in kwargs}
    messages = [kwargs.pop(name) for name in MESSAGE_ARGS if name in kwargs]
    post_execution = kwargs.pop("is_post_execution", None)
    timeout_at = kwargs.pop("timeout_at", None)
    after = {"step_index": kwargs.pop("step_index")} if "step_index" in kwargs else {}

    kind = args[1] if len(args) > 1 else kwargs.get("kind")
    raised = [k for name, k in KIND_FLAGS if flags.get(name)]
    if kind is None:
        if not raised and post_execution:
            raised = [kinds.OUTPUT_REVIEW]
        kind = raised[0] if raised else kinds.UNSPECIFIED  # no flag: a requirement that asks for nothing
        kwargs["kind"] = kind
        # The documented constructor's defaults (kern's engine always passes its primitive's values).
        kwargs.setdefault("on_reject", "cancel")
        kwargs.setdefault("max_retries", None)
    allowed = {kind, kinds.CONFIRMATION} if kind in REVIEWS else {kind}
    if kind == kinds.ITERATION_REVIEW:
        allowed.add(kinds.OUTPUT_REVIEW)  # an iteration review is an output review of a Loop
    clashing = [name for name, k in KIND_FLAGS if flags.get(name) and k not in allowed]
    if clashing:
        raise ValueError(
            f"StepRequirement of kind {kind!r} cannot also have {', '.join(f'{n}=True' for n in clashing)}."
        )
    if post_execution and kind not in REVIEWS:
        raise ValueError(f"is_post_execution=True applies to output and iteration reviews, not to a {kind!r} pause.")

    if len(args) < 1 and "step_name" not in kwargs:
        kwargs["step_name"] = ""  # optional in the reference API
    if kwargs.get("message") is None:
        given = [m for m in messages if m is not None]
        if given:
            kwargs["message"] = given[0]
    if timeout_at is not None and kwargs.get("deadline") is None:
        kwargs["deadline"] = as_timestamp(timeout_at, "timeout_at")
    return after


def as_timestamp(value: Any, name: str) -> float:
    """A deadline given as a datetime (naive means UTC), an ISO 8601 string or a number of seconds."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{name}: {value!r} is not an ISO 8601 date and time") from None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"{name}: expected a datetime, got {type(value).__name__}")


# Keys of a requirement dict in the reference API's form that `from_dict` passes to the constructor.
DOCUMENTED_KEYS = frozenset(
    {
        "step_id",
        "step_name",
        "step_index",
        "step_type",
        "confirmed",
        "on_reject",
        "user_input",
        "available_choices",
        "allow_multiple_selections",
        "selected_choices",
        "executor_requirements",
        "executor_id",
        "executor_name",
        "executor_run_id",
        "executor_type",
        "executor_session_id",
        "is_post_execution",
        "rejection_feedback",
        "edited_output",
        "retry_count",
        "max_retries",
        "timeout_at",
        "on_timeout",
        *MESSAGE_ARGS,
        *(name for name, _ in KIND_FLAGS),
    }
)
