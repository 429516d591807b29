"""CEL expressions as a Condition evaluator, a Router selector and a Loop end condition: they are
evaluated (never taken as a truthy string), a malformed one is refused when the primitive is built, one
that fails to evaluate ends the run with ERROR naming it, and a CEL branch decision survives a pause and
a continue from a new Workflow object on another database connection."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kern.run.base import RunStatus
from kern.workflow import Condition, Loop, Router, Step, StepInput, StepOutput, Workflow
from tests.conftest import make_db, unique


def shout(step_input: StepInput) -> str:
    return "IF"


def whisper(step_input: StepInput) -> str:
    return "ELSE"


def branching(evaluator: str) -> Condition:
    return Condition(
        name="check",
        evaluator=evaluator,
        steps=[Step(name="if_step", executor=shout)],
        else_steps=[Step(name="else_step", executor=whisper)],
    )


def run(steps: list, input: str = "hello", **options: object) -> tuple[str, object]:
    out = Workflow(name=unique("cel"), steps=steps).run(input, **options)  # type: ignore[arg-type]
    return out.status.value, out.content


# ----- Condition ------------------------------------------------------------------------------------
def test_a_false_cel_condition_runs_the_else_branch_not_the_if_branch() -> None:
    assert run([branching('input.contains("zzz")')]) == ("COMPLETED", "ELSE")


def test_a_true_cel_condition_runs_the_if_branch() -> None:
    assert run([branching('input.contains("zzz")')], "a zzz b") == ("COMPLETED", "IF")


def test_cel_condition_sees_previous_step_outputs_additional_data_and_session_state() -> None:
    def research(step_input: StepInput) -> str:
        return "found an error here"

    expression = (
        'previous_step_outputs.research.contains("error") && additional_data.priority > 5 '
        '&& session_state.retries < 3 && previous_step_content.startsWith("found")'
    )
    steps = [Step(name="research", executor=research), branching(expression)]
    assert run(steps, additional_data={"priority": 7}, session_state={"retries": 1}) == ("COMPLETED", "IF")
    assert run(steps, additional_data={"priority": 2}, session_state={"retries": 1}) == ("COMPLETED", "ELSE")


def test_a_malformed_cel_condition_is_refused_at_construction_naming_it() -> None:
    with pytest.raises(ValueError, match=r"Condition 'check' evaluator: invalid CEL expression 'input.contains\('"):
        branching("input.contains(")


def test_a_cel_condition_that_fails_to_evaluate_ends_the_run_with_error() -> None:
    status, content = run([branching("session_state.missing")])
    assert status == "ERROR"
    assert "Condition 'check' evaluator" in str(content) and "session_state.missing" in str(content)


def test_a_condition_evaluator_of_another_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="evaluator must be a bool"):
        Condition(name="check", evaluator=3, steps=[shout])  # type: ignore[arg-type]


# ----- Router ---------------------------------------------------------------------------------------
def routed(selector: str) -> Router:
    return Router(
        name="route",
        selector=selector,
        choices=[Step(name="video", executor=shout), Step(name="image", executor=whisper)],
    )


def test_a_cel_router_selector_picks_the_named_choice() -> None:
    selector = 'input.contains("video") ? "video" : "image"'
    assert run([routed(selector)], "a video please") == ("COMPLETED", "IF")
    assert run([routed(selector)], "a picture please") == ("COMPLETED", "ELSE")


def test_a_cel_router_selector_sees_step_choices_and_additional_data() -> None:
    selector = "additional_data.route in step_choices ? additional_data.route : step_choices[0]"
    assert run([routed(selector)], additional_data={"route": "image"}) == ("COMPLETED", "ELSE")
    assert run([routed(selector)], additional_data={"route": "nope"}) == ("COMPLETED", "IF")


def test_a_cel_router_selector_naming_no_choice_ends_the_run_with_error() -> None:
    status, content = run([routed('"audio"')])
    assert status == "ERROR" and "unknown route(s) ['audio']" in str(content)


def test_a_malformed_cel_router_selector_is_refused_at_construction_naming_it() -> None:
    with pytest.raises(ValueError, match=r"Router 'route' selector: invalid CEL expression '\"video\" \?'"):
        routed('"video" ?')


# ----- Loop -----------------------------------------------------------------------------------------
def test_a_cel_loop_end_condition_ends_the_loop() -> None:
    calls: list[int] = []

    def work(step_input: StepInput) -> StepOutput:
        calls.append(len(calls) + 1)
        return StepOutput(content="DONE" if len(calls) == 3 else f"try {len(calls)}")

    loop = Loop(
        name="poll",
        steps=[Step(name="work", executor=work)],
        end_condition='last_step_content.contains("DONE")',
        max_iterations=10,
    )
    assert run([loop]) == ("COMPLETED", "DONE")
    assert calls == [1, 2, 3]


def test_a_cel_loop_end_condition_sees_the_iteration_and_its_outputs() -> None:
    calls: list[str] = []

    def work(step_input: StepInput) -> str:
        calls.append("x")
        return f"round {len(calls)}"

    end = 'current_iteration >= 2 && max_iterations == 5 && all_success && step_outputs.work.startsWith("round")'
    loop = Loop(name="poll", steps=[Step(name="work", executor=work)], end_condition=end, max_iterations=5)
    assert run([loop]) == ("COMPLETED", "round 2")


def test_a_malformed_cel_loop_end_condition_is_refused_at_construction_naming_it() -> None:
    with pytest.raises(ValueError, match=r"Loop 'poll' end_condition: invalid CEL expression 'current_iteration >='"):
        Loop(name="poll", steps=[shout], end_condition="current_iteration >=")


# ----- durability -----------------------------------------------------------------------------------
@pytest.mark.parametrize("db_kind", ["sqlite", "postgres"])
def test_a_cel_branch_pauses_and_continues_from_a_new_workflow_object(db_kind: str, tmp_path: Path) -> None:
    calls: list[str] = []

    def record(name: str) -> Callable[[StepInput], str]:
        def executor(step_input: StepInput) -> str:
            calls.append(name)
            return f"{name}:{step_input.previous_step_content}"

        executor.__name__ = name
        return executor

    name = unique("cel-pause")

    def build() -> Workflow:
        return Workflow(
            name=name,
            db=make_db(db_kind, tmp_path),
            steps=[
                Condition(
                    name="urgent?",
                    evaluator='input.contains("urgent") && session_state.tier == "gold"',
                    steps=[Step(name="page", executor=record("page"), requires_confirmation=True)],
                    else_steps=[Step(name="queue", executor=record("queue"))],
                ),
                Step(name="close", executor=record("close")),
            ],
        )

    paused = build().run("urgent: disk full", session_state={"tier": "gold"})
    assert paused.status == RunStatus.PAUSED and paused.step_requirements[-1].step_name == "page"
    assert calls == []

    again = build()
    loaded = again.get_run(paused.run_id)
    loaded.step_requirements[-1].confirm()
    done = again.continue_run(loaded)
    assert done.status == RunStatus.COMPLETED
    assert calls == ["page", "close"]
    assert done.content == "close:page:None"
