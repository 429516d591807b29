"""HITL configuration: the support table of seeds/003, validation, serialization."""

from __future__ import annotations

import pytest

from kern.workflow import (
    Condition,
    HumanReview,
    Loop,
    OnError,
    OnReject,
    OnTimeout,
    Parallel,
    Router,
    Step,
    Steps,
    UserInputField,
)


def noop(step_input: object) -> str:
    return "ok"


def build(primitive: str, **hitl: object) -> object:
    child = Step(name="child", executor=noop)
    if primitive == "Step":
        return Step(name="s", executor=noop, **hitl)  # type: ignore[arg-type]
    if primitive == "Loop":
        return Loop(name="l", steps=[child], **hitl)
    if primitive == "Router":
        return Router(name="r", selector=lambda s: "child", choices=[child], **hitl)
    if primitive == "Condition":
        return Condition(name="c", evaluator=True, steps=[child], **hitl)
    if primitive == "Steps":
        return Steps(name="g", steps=[child], **hitl)
    return Parallel(child, name="p", **hitl)


SUPPORT = {  # seeds/003 "Supported Fields by Component"
    "requires_confirmation": {"Step", "Loop", "Router", "Condition", "Steps", "Parallel"},
    "requires_user_input": {"Step", "Router"},
    "requires_output_review": {"Step", "Router"},
    "requires_iteration_review": {"Loop"},
    # seeds/003's table lists Step only; the reference's Condition takes on_error too (its cookbook's
    # condition/02_condition_on_error.py), and so does kern's (docs/differences.md)
    "on_error": {"Step", "Condition"},
}
MESSAGE_SUPPORTED = {
    "Step": "requires_confirmation, requires_user_input, requires_output_review",
    "Loop": "requires_confirmation, requires_iteration_review",
    "Router": "requires_confirmation, requires_user_input, requires_output_review",
    "Condition": "requires_confirmation",
    "Steps": "requires_confirmation",
    "Parallel": "requires_confirmation",
}
PRIMITIVES = ["Step", "Loop", "Router", "Condition", "Steps", "Parallel"]


@pytest.mark.parametrize("primitive", PRIMITIVES)
@pytest.mark.parametrize("field", list(SUPPORT))
@pytest.mark.parametrize("style", ["human_review", "flat"])
def test_support_table(primitive: str, field: str, style: str) -> None:
    value: object = OnError.pause if field == "on_error" else True
    kwargs = {"human_review": HumanReview(**{field: value})} if style == "human_review" else {field: value}
    if primitive in SUPPORT[field]:
        node = build(primitive, **kwargs)
        assert getattr(node.human_review, field) == value  # type: ignore[attr-defined]
        return
    if field == "on_error":
        expected = f"on_error is not supported on {primitive}. Supported on: Step, Condition."
    else:
        expected = f"{field} is not supported on {primitive}. Supported: {MESSAGE_SUPPORTED[primitive]}."
    with pytest.raises(ValueError) as error:
        build(primitive, **kwargs)
    assert str(error.value) == expected


@pytest.mark.parametrize("primitive", PRIMITIVES)
def test_common_fields_everywhere(primitive: str) -> None:
    node = build(
        primitive, requires_confirmation=True, on_reject="cancel", hitl_max_retries=5, hitl_timeout=9, on_timeout="skip"
    )
    review = node.human_review  # type: ignore[attr-defined]
    assert (review.on_reject, review.max_retries, review.timeout, review.on_timeout) == (
        OnReject.cancel,
        5,
        9,
        OnTimeout.skip,  # kept as spelled; it decides as a rejection
    )
    assert review.on_timeout.rejects


def test_human_review_wins_over_flat_parameters() -> None:
    step = Step(
        name="s",
        executor=noop,
        human_review=HumanReview(requires_confirmation=True, confirmation_message="from config"),
        requires_output_review=True,
        confirmation_message="flat",
    )
    assert step.human_review.confirmation_message == "from config"
    assert step.human_review.requires_output_review is False


def test_validation_errors() -> None:
    with pytest.raises(ValueError, match="cannot both be True"):
        HumanReview(requires_output_review=True, requires_iteration_review=True)
    with pytest.raises(ValueError, match=r"Invalid on_reject 'bogus'\. Valid values: skip, cancel, retry, else"):
        Step(name="s", executor=noop, requires_confirmation=True, on_reject="bogus")
    with pytest.raises(ValueError, match="Invalid on_timeout"):
        HumanReview(on_timeout="later")
    with pytest.raises(ValueError, match="Invalid on_error"):
        HumanReview(on_error="explode")
    with pytest.raises(ValueError, match="field_type 'decimal' is not supported"):
        UserInputField(name="x", field_type="decimal")
    with pytest.raises(TypeError, match=r"unexpected keyword argument.*requires_magic"):
        Steps(name="g", steps=[noop], requires_magic=True)
    with pytest.raises(ValueError, match="needs exactly one of executor=, agent=, team= or workflow="):
        Step(name="s")
    with pytest.raises(ValueError, match="on_reject=retry is not supported on Condition"):
        Condition(name="c", steps=[noop], requires_confirmation=True, on_reject="retry")
    # "skip" keeps its spelling and decides as a rejection (the alias of reject)
    assert OnTimeout("skip") is OnTimeout.skip and OnTimeout.skip.rejects and OnTimeout.reject.rejects
    assert OnReject("else") is OnReject.else_branch


def test_condition_defaults_to_else_branch() -> None:
    assert Condition(name="c", steps=[noop], requires_confirmation=True).human_review.on_reject is OnReject.else_branch
    explicit = Condition(
        name="c", steps=[noop], human_review=HumanReview(requires_confirmation=True, on_reject=OnReject.skip)
    )
    assert explicit.human_review.on_reject is OnReject.skip
    assert Step(name="s", executor=noop, requires_confirmation=True).human_review.on_reject is OnReject.skip


def test_serialization() -> None:
    step = Step(
        name="s",
        executor=noop,
        requires_confirmation=True,
        hitl_timeout=30,
        user_input_schema=[UserInputField(name="n", field_type="int", value=2)],
    )
    data = step.to_dict()
    assert data["type"] == "Step" and set(data) >= {"human_review"}
    assert "requires_confirmation" not in data  # one key, not flat ones
    assert HumanReview.from_dict(data) == step.human_review
    legacy = {"requires_confirmation": True, "hitl_max_retries": 7, "hitl_timeout": 12, "on_reject": "cancel"}
    restored = HumanReview.from_dict(legacy)
    assert (restored.max_retries, restored.timeout, restored.on_reject) == (7, 12, OnReject.cancel)
    with pytest.raises(ValueError, match="callable and cannot be serialized"):
        Step(name="s", executor=noop, requires_output_review=lambda out: True).to_dict()
