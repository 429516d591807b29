"""Agents, Teams and Workflows given directly in `steps=[...]` become Steps running them, named after
them; a nested Workflow runs to its end as one step (sharing the run's session_state), and one that
pauses or fails fails that step rather than being skipped over. Also: the constructors the reference API
allows (containers without a name, an empty Parallel, Router choices as lists, a Router without a
selector, `Condition.from_dict`) and an explicit `on_error="fail"`."""

from __future__ import annotations

from typing import Any

import pytest

from kern.agent import Agent
from kern.run.base import RunStatus
from kern.team import Team
from kern.workflow import Condition, Loop, Parallel, Router, Step, StepInput, Steps, Workflow
from tests.conftest import unique
from tests.openai_stub import FakeOpenAI, text


@pytest.fixture
def fresh(server: FakeOpenAI) -> FakeOpenAI:
    server._script.clear()
    server.requests.clear()
    return server


def test_an_agent_and_a_team_in_steps_run_as_steps_named_after_them(fresh: FakeOpenAI, model_factory: Any) -> None:
    fresh.script(text("drafted"), text("reviewed"))
    writer = Agent(name="Writer", model=model_factory(), description="writes")
    reviewers = Team(name="Reviewers", model=model_factory(), members=[Agent(name="R", model=model_factory())])
    wf = Workflow(name=unique("agents"), steps=[writer, reviewers])
    assert [(s.name, s.description) for s in wf.steps] == [("Writer", "writes"), ("Reviewers", None)]
    assert isinstance(wf.steps[0], Step) and wf.steps[0].agent is writer and wf.steps[1].team is reviewers
    out = wf.run("write about owls")
    assert out.status == RunStatus.COMPLETED, out.error
    assert [r.content for r in out.step_results] == ["drafted", "reviewed"]
    assert "drafted" in str(fresh.requests[1])  # the team got the agent's output


def test_a_nested_workflow_runs_as_one_step_sharing_session_state() -> None:
    def inner_step(step_input: StepInput, session_state: dict[str, Any]) -> str:
        session_state["inner"] = step_input.input
        return f"inner saw {step_input.input}"

    inner = Workflow(name=unique("inner"), steps=[inner_step])
    outer = Workflow(
        name=unique("outer"), steps=[inner, Step(name="after", executor=lambda si: si.previous_step_content)]
    )
    assert outer.steps[0].name == inner.name
    out = outer.run("hello", session_state={"outer": 1})
    assert out.status == RunStatus.COMPLETED, out.error
    assert out.content == "inner saw hello"
    assert out.step_results[0].step_type == "Workflow"
    assert out.session_state == {"outer": 1, "inner": "hello"}


def test_a_nested_workflow_that_pauses_fails_its_step_naming_the_pause() -> None:
    inner = Workflow(
        name=unique("inner"), steps=[Step(name="ask", executor=lambda si: "x", requires_confirmation=True)]
    )
    out = Workflow(name=unique("outer"), steps=[Step(name="nested", workflow=inner)]).run("go")
    assert out.status == RunStatus.ERROR
    assert "paused at step 'ask'" in (out.error or "")


def test_anything_else_in_steps_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="agents, teams, workflows or functions, got int"):
        Workflow(name="bad", steps=[3])


# ----- constructors ---------------------------------------------------------------------------------
def test_containers_need_no_name_and_parallel_takes_a_positional_name_or_no_steps() -> None:
    def one(step_input: StepInput) -> str:
        return "one"

    assert Parallel(one).name == "Parallel" and Parallel().steps == []
    named = Parallel("both", one, Step(name="two", executor=lambda si: "two"))
    assert named.name == "both" and [s.name for s in named.steps] == ["one", "two"]
    assert Parallel("x", one, name="kw").name == "kw"
    assert (Condition(steps=[one]).name, Loop(steps=[one]).name, Steps(steps=[one]).name) == (
        "Condition",
        "Loop",
        "Steps",
    )
    assert Router(choices=[one], selector=lambda si: "one").name == "Router"
    with pytest.raises(ValueError, match="Step needs a name"):
        Step(executor=None, agent=object())  # an agent without a name leaves the Step nameless
    out = Workflow(name=unique("names"), steps=[Parallel(), Condition(steps=[one])]).run("x")
    assert out.status == RunStatus.COMPLETED and out.content == "one"


def test_router_choices_given_as_lists_become_steps_groups() -> None:
    router = Router(
        name="r",
        selector=lambda si: "steps_group_1",
        choices=[
            Step(name="single", executor=lambda si: "single"),
            [lambda si: "a", Step(name="b", executor=lambda si: f"b after {si.previous_step_content}")],
        ],
    )
    assert [c.name for c in router.choices] == ["single", "steps_group_1"]
    assert isinstance(router.choices[1], Steps)
    out = Workflow(name=unique("groups"), steps=[router]).run("x")
    assert out.content == "b after a"


def test_a_router_without_a_selector_is_built_and_running_it_names_the_problem() -> None:
    router = Router(name="lonely", choices=[Step(name="a", executor=lambda si: "a")])
    assert router.selector is None
    out = Workflow(name=unique("lonely"), steps=[router]).run("x")
    assert out.status == RunStatus.ERROR
    assert "Router 'lonely' has no selector and no requires_user_input" in (out.error or "")


def test_condition_from_dict_rebuilds_it() -> None:
    def ready(step_input: StepInput) -> bool:
        return True

    def act(step_input: StepInput) -> str:
        return "acted"

    class Registry:
        functions = {"ready": ready, "act": act}

        def get_function(self, name: str) -> Any:
            return self.functions.get(name)

    cel = Condition.from_dict(
        {"name": "c", "evaluator": 'input == "go"', "steps": [], "requires_confirmation": True, "on_reject": "skip"}
    )
    assert cel.evaluator == 'input == "go"' and cel.human_review.requires_confirmation and cel.on_reject == "skip"
    original = Condition(name="c", evaluator=ready, steps=[Step(name="act", executor=act)], requires_confirmation=True)
    rebuilt = Condition.from_dict(original.to_dict(), registry=Registry())
    assert rebuilt.evaluator is ready and rebuilt.steps[0].executor is act  # type: ignore[attr-defined]
    assert rebuilt.human_review == original.human_review and rebuilt.on_reject == "else"
    with pytest.raises(ValueError, match="function 'ready' not found"):
        Condition.from_dict(original.to_dict())
    with pytest.raises(ValueError, match="cannot rebuild a Loop"):
        Condition.from_dict({"name": "c", "steps": [{"type": "Loop", "name": "l"}]})
    with pytest.raises(ValueError, match="invalid CEL expression"):
        Condition.from_dict({"name": "c", "evaluator": "input ==", "evaluator_type": "cel"})


def test_an_explicit_on_error_fail_raises_the_step_exception_after_storing_the_run() -> None:
    def broken(step_input: StepInput) -> str:
        raise KeyError("missing")

    wf = Workflow(name=unique("fail"), steps=[Step(name="broken", executor=broken, on_error="fail")])
    with pytest.raises(KeyError, match="missing"):
        wf.run("x")
    stored = wf.get_session().runs[-1]
    assert stored.status == RunStatus.ERROR and "KeyError" in (stored.error or "")
    unset = Workflow(name=unique("fail"), steps=[Step(name="broken", executor=broken)]).run("x")
    assert unset.status == RunStatus.ERROR  # unset: returned, not raised (see docs/differences.md)
