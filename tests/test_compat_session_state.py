"""Session state and the run context: user code that declares `session_state` and/or `run_context`
(step executors, Router selectors, Condition evaluators, Loop end conditions) gets them; the state is the
run's own dict, changes to it are stored with the run and seen after a pause by a new Workflow object,
and `Workflow(session_state=...)` is the starting state every run gets a copy of."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kern.run import RunContext
from kern.run.base import RunStatus
from kern.workflow import Condition, Loop, Router, Step, StepInput, Steps, Workflow
from tests.conftest import make_db, unique


def test_an_executor_gets_the_run_context_and_the_session_state() -> None:
    seen: list[Any] = []

    def both(step_input: StepInput, run_context: RunContext, session_state: dict[str, Any]) -> str:
        seen.append((run_context, session_state))
        session_state["visits"] = session_state.get("visits", 0) + 1
        return "ok"

    async def only_context(step_input: StepInput, run_context: RunContext) -> str:
        run_context.session_state["async"] = True  # type: ignore[index]
        return f"{run_context.user_id}/{run_context.workflow_name}"

    wf = Workflow(name=unique("ctx"), steps=[both, Step(name="two", executor=only_context)])
    out = wf.run("go", user_id="ann", session_id="s-1", run_id="r-1")
    assert out.status == RunStatus.COMPLETED and out.content == f"ann/{wf.name}"
    context, state = seen[0]
    assert isinstance(context, RunContext)
    assert (context.run_id, context.session_id, context.user_id) == ("r-1", "s-1", "ann")
    assert (context.workflow_id, context.workflow_name) == (wf.id, wf.name)
    assert context.session_state is state
    assert out.session_state == {"visits": 1, "async": True}


def test_selectors_evaluators_and_end_conditions_get_them_too() -> None:
    def route(step_input: StepInput, session_state: dict[str, Any], step_choices: list[Any]) -> Any:
        session_state["routed"] = [c.name for c in step_choices]
        return step_choices[1]

    def wanted(step_input: StepInput, run_context: RunContext) -> bool:
        return bool(run_context.session_state and run_context.session_state.get("go"))

    def count(step_input: StepInput, session_state: dict[str, Any]) -> int:
        session_state["rounds"] = session_state.get("rounds", 0) + 1
        return session_state["rounds"]

    def enough(outputs: list[Any], run_context: RunContext) -> bool:
        return run_context.session_state["rounds"] >= 2  # type: ignore[index]

    wf = Workflow(
        name=unique("ctx"),
        steps=[
            Router(
                name="r",
                selector=route,
                choices=[Step(name="a", executor=lambda si: "A"), Step(name="b", executor=lambda si: "B")],
            ),
            Condition(name="c", evaluator=wanted, steps=[Step(name="yes", executor=lambda si: "yes")]),
            Loop(name="l", steps=[Step(name="count", executor=count)], end_condition=enough, max_iterations=5),
        ],
    )
    out = wf.run("x", session_state={"go": True})
    assert out.status == RunStatus.COMPLETED, out.error
    assert [r.content for r in out.step_results] == ["B", "yes", 2]
    assert out.session_state == {"go": True, "routed": ["a", "b"], "rounds": 2}


def test_the_workflow_session_state_is_copied_per_run_and_the_run_argument_wins() -> None:
    def bump(step_input: StepInput, session_state: dict[str, Any]) -> int:
        session_state["n"] += 1
        session_state["nested"]["seen"].append(step_input.input)
        return session_state["n"]

    initial = {"n": 0, "nested": {"seen": [], "keep": 1}}
    wf = Workflow(name=unique("ctx"), steps=[bump], session_state=initial)
    assert wf.run("a").content == 1
    assert wf.run("b").content == 1  # each run starts again from the workflow's state
    assert initial == {"n": 0, "nested": {"seen": [], "keep": 1}}  # never changed by a run

    given = {"n": 10, "nested": {"seen": ["before"]}}
    out = wf.run("c", session_state=given)
    assert out.content == 11
    assert out.session_state == {"n": 11, "nested": {"seen": ["before", "c"], "keep": 1}}
    assert given is not initial and given["n"] == 11  # the caller's dict is the run's (as in the reference)


def test_without_any_session_state_user_code_still_gets_a_dict() -> None:
    def note(step_input: StepInput, session_state: dict[str, Any]) -> str:
        session_state["noted"] = True
        return "ok"

    out = Workflow(name=unique("ctx"), steps=[note]).run("x")
    assert out.session_state == {"noted": True}


def test_a_declared_parameter_with_a_default_is_still_given_and_kwargs_are_not() -> None:
    def optional(step_input: StepInput, run_context: RunContext | None = None, **extra: Any) -> str:
        assert not extra
        return "has context" if run_context is not None else "none"

    assert Workflow(name=unique("ctx"), steps=[optional]).run("x").content == "has context"


@pytest.mark.parametrize("db_kind", ["sqlite", "postgres"])
def test_state_changed_before_a_pause_is_stored_and_seen_after_continue(db_kind: str, tmp_path: Path) -> None:
    seen_after: list[dict[str, Any]] = []

    def before(step_input: StepInput, run_context: RunContext) -> str:
        assert run_context.session_state is not None
        run_context.session_state["cart"].append("pen")
        return "added"

    def after(step_input: StepInput, session_state: dict[str, Any], run_context: RunContext) -> str:
        seen_after.append(dict(session_state))
        session_state["paid"] = run_context.user_id
        return f"paid for {', '.join(session_state['cart'])}"

    name = unique("ctx-pause")

    def build() -> Workflow:
        return Workflow(
            name=name,
            db=make_db(db_kind, tmp_path),
            session_state={"cart": []},
            steps=[
                Step(name="add", executor=before),
                Steps(name="checkout", steps=[Step(name="pay", executor=after, requires_confirmation=True)]),
            ],
        )

    paused = build().run("buy", user_id="bob")
    assert paused.status == RunStatus.PAUSED
    assert paused.session_state == {"cart": ["pen"]}

    again = build()  # a new object, a new connection: only the store carries the state
    stored = again.get_run(paused.run_id)
    assert stored.session_state == {"cart": ["pen"]}
    stored.step_requirements[-1].confirm()
    done = again.continue_run(stored)
    assert done.status == RunStatus.COMPLETED and done.content == "paid for pen"
    assert seen_after == [{"cart": ["pen"]}]
    assert again.get_run(paused.run_id).session_state == {"cart": ["pen"], "paid": "bob"}
