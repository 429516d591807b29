"""Human-review configuration shared by every primitive: flat parameters, validation, defaults."""

from __future__ import annotations

from typing import Any

from kern.workflow.types import HumanReview, OnReject

# Flat parameter name -> HumanReview field.
FLAT_PARAMS = {
    "requires_confirmation": "requires_confirmation",
    "confirmation_message": "confirmation_message",
    "requires_user_input": "requires_user_input",
    "user_input_message": "user_input_message",
    "user_input_schema": "user_input_schema",
    "requires_output_review": "requires_output_review",
    "output_review_message": "output_review_message",
    "requires_iteration_review": "requires_iteration_review",
    "iteration_review_message": "iteration_review_message",
    "on_reject": "on_reject",
    "on_error": "on_error",
    "hitl_max_retries": "max_retries",
    "hitl_timeout": "timeout",
    "on_timeout": "on_timeout",
}

# The HITL modes each primitive supports (seeds/003). Every primitive supports on_reject,
# max_retries, timeout and on_timeout; Step and Condition support on_error (as in the reference).
SUPPORTED_MODES: dict[str, tuple[str, ...]] = {
    "Step": ("requires_confirmation", "requires_user_input", "requires_output_review"),
    "Loop": ("requires_confirmation", "requires_iteration_review"),
    "Router": ("requires_confirmation", "requires_user_input", "requires_output_review"),
    "Condition": ("requires_confirmation",),
    "Steps": ("requires_confirmation",),
    "Parallel": ("requires_confirmation",),
}

ON_ERROR_PRIMITIVES = ("Step", "Condition")


def build_human_review(
    primitive: str,
    human_review: HumanReview | dict[str, Any] | None,
    flat: dict[str, Any],
    *,
    default_on_reject: OnReject = OnReject.skip,
) -> HumanReview:
    """Merge `human_review` (wins when given) or the flat parameters, then validate for `primitive`."""
    if isinstance(human_review, dict):
        human_review = HumanReview.from_dict(human_review)
    if human_review is None:
        values = {FLAT_PARAMS[k]: v for k, v in flat.items() if v is not None}
        human_review = HumanReview(**values)
    explicit = human_review.model_fields_set
    if "on_reject" not in explicit and default_on_reject is not OnReject.skip:
        human_review = human_review.model_copy(update={"on_reject": default_on_reject})
    supported = SUPPORTED_MODES[primitive]
    for mode in human_review.enabled_modes:
        if mode not in supported:
            raise ValueError(f"{mode} is not supported on {primitive}. Supported: {', '.join(supported)}.")
    if human_review.on_error is not None and primitive not in ON_ERROR_PRIMITIVES:
        raise ValueError(f"on_error is not supported on {primitive}. Supported on: {', '.join(ON_ERROR_PRIMITIVES)}.")
    return human_review


def flat_params(primitive: str, params: dict[str, Any]) -> dict[str, Any]:
    """Check keyword arguments of a container primitive: unknown names are a `TypeError`."""
    unknown = sorted(set(params) - set(FLAT_PARAMS))
    if unknown:
        raise TypeError(
            f"{primitive}() got unexpected keyword argument(s) {', '.join(unknown)}. "
            f"HITL parameters: {', '.join(FLAT_PARAMS)}."
        )
    return {k: v for k, v in params.items() if v is not None}
