"""The code snippets of seeds/000, 003 and 004, run as written (function executors and a stand-in agent
where the snippets use agents). Each test runs in its own temporary directory, so the snippets'
`SqliteDb(db_file="workflow.db")` is used literally."""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kern.run.base import RunStatus


class StandInAgent:
    """An agent stand-in: `arun(message)` returns an object with `.content`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[str] = []

    async def arun(self, message: str, **_: Any) -> Any:
        self.calls.append(message)
        return type("Out", (), {"content": f"{self.name}: {message.splitlines()[0]}", "is_paused": False})()


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    yield


def test_000_overview_snippet() -> None:
    fetch_agent, process_agent = StandInAgent("fetch"), StandInAgent("process")
    from kern.db.sqlite import SqliteDb
    from kern.workflow import OnReject, Workflow
    from kern.workflow.step import Step
    from kern.workflow.types import HumanReview

    workflow = Workflow(
        name="data_pipeline",
        db=SqliteDb(db_file="workflow.db"),  # Required for HITL
        steps=[
            Step(name="fetch_data", agent=fetch_agent),
            Step(
                name="process_data",
                agent=process_agent,
                human_review=HumanReview(
                    requires_confirmation=True,
                    confirmation_message="Process sensitive data?",
                    on_reject=OnReject.skip,
                ),
            ),
        ],
    )

    run_output = workflow.run("Process user data")

    if run_output.is_paused:
        for req in run_output.steps_requiring_confirmation:
            req.confirm()  # or req.reject()
        run_output = workflow.continue_run(run_output)

    assert run_output.status == RunStatus.COMPLETED
    assert run_output.content == "process: Process user data"
    assert fetch_agent.calls == ["Process user data"]  # fetch ran once, before the pause


def test_000_timeout_snippet() -> None:
    deploy_agent = StandInAgent("deploy")
    from kern.workflow import OnTimeout
    from kern.workflow.step import Step
    from kern.workflow.types import HumanReview

    step = Step(
        name="approve_deploy",
        agent=deploy_agent,
        human_review=HumanReview(
            requires_confirmation=True,
            confirmation_message="Approve deployment?",
            timeout=300,  # 5 minutes
            on_timeout=OnTimeout.approve,  # approve | reject | cancel
        ),
    )
    assert step.human_review.timeout == 300 and step.human_review.on_timeout is OnTimeout.approve


def test_000_streaming_snippet() -> None:
    from kern.db.sqlite import SqliteDb
    from kern.run.workflow import StepExecutorPausedEvent, StepPausedEvent
    from kern.workflow import Workflow
    from kern.workflow.step import Step

    workflow = Workflow(
        name="streamed",
        db=SqliteDb(db_file="workflow.db"),
        steps=[Step(name="gate", executor=lambda s: "ran", requires_confirmation=True)],
    )
    seen = []
    for event in workflow.run("input", stream=True):
        if isinstance(event, (StepPausedEvent, StepExecutorPausedEvent)):
            seen.append(event.step_name)

    session = workflow.get_session()
    run_output = session.runs[-1]

    if run_output.is_paused:
        for req in run_output.steps_requiring_confirmation:
            req.confirm()
        for event in workflow.continue_run(run_output, stream=True):
            pass
    assert seen == ["gate"]
    assert workflow.get_session().runs[-1].content == "ran"


def test_000_pause_decorator_snippet() -> None:
    from kern.db.sqlite import SqliteDb
    from kern.workflow import Workflow
    from kern.workflow.decorators import pause
    from kern.workflow.step import Step
    from kern.workflow.types import StepInput, StepOutput, UserInputField

    @pause(
        requires_user_input=True,
        user_input_message="Enter parameters:",
        user_input_schema=[
            UserInputField(name="threshold", field_type="float", required=True),
        ],
    )
    def process_data(step_input: StepInput) -> StepOutput:
        threshold = step_input.additional_data["user_input"]["threshold"]
        return StepOutput(content=f"Processed with threshold {threshold}")

    workflow = Workflow(
        name="decorated", db=SqliteDb(db_file="workflow.db"), steps=[Step(name="process", executor=process_data)]
    )
    run = workflow.run("x")
    assert run.steps_requiring_user_input[0].user_input_message == "Enter parameters:"
    run.steps_requiring_user_input[0].set_user_input(threshold="0.75")
    assert workflow.continue_run(run).content == "Processed with threshold 0.75"
    bare = Workflow(name="bare", db=SqliteDb(db_file="workflow.db"), steps=[process_data])
    assert bare.run("x").steps_requiring_user_input[0].step_name == "process_data"


def test_003_human_review_snippets() -> None:
    draft_agent = StandInAgent("draft")
    from kern.workflow import OnReject, OnTimeout
    from kern.workflow.condition import Condition
    from kern.workflow.step import Step
    from kern.workflow.types import HumanReview, UserInputField

    consolidated = Step(
        name="draft_email",
        agent=draft_agent,
        human_review=HumanReview(
            requires_output_review=True,
            output_review_message="Review the draft before sending.",
            on_reject=OnReject.retry,
            max_retries=3,
            timeout=300,
            on_timeout=OnTimeout.approve,
        ),
    )
    flat = Step(
        name="draft_email",
        agent=draft_agent,
        requires_output_review=True,
        output_review_message="Review the draft before sending.",
        on_reject=OnReject.retry,
        hitl_max_retries=3,
        hitl_timeout=300,
        on_timeout=OnTimeout.approve,
    )
    assert consolidated.human_review == flat.human_review

    with pytest.raises(
        ValueError,
        match=r"^requires_output_review is not supported on Condition\. "
        r"Supported: requires_confirmation\.$",
    ):
        Condition(
            name="my_condition",
            steps=[Step(name="s", executor=lambda s: 1)],
            human_review=HumanReview(requires_output_review=True),
        )

    modes = [
        HumanReview(requires_confirmation=True, confirmation_message="Delete 1000 records?", on_reject=OnReject.cancel),
        HumanReview(
            requires_user_input=True,
            user_input_message="Configure report settings:",
            user_input_schema=[
                UserInputField(name="format", field_type="str", required=True),
                UserInputField(name="include_charts", field_type="bool", required=False),
            ],
        ),
        HumanReview(
            requires_output_review=True,
            output_review_message="Review the generated report.",
            on_reject=OnReject.retry,
            max_retries=3,
        ),
        HumanReview(
            requires_iteration_review=True,
            iteration_review_message="Review this iteration's output.",
            on_reject=OnReject.retry,
        ),
        HumanReview(
            requires_confirmation=True,
            confirmation_message="Approve deployment?",
            timeout=300,
            on_timeout=OnTimeout.approve,
        ),
    ]
    assert [m.enabled_modes for m in modes] == [
        ["requires_confirmation"],
        ["requires_user_input"],
        ["requires_output_review"],
        ["requires_iteration_review"],
        ["requires_confirmation"],
    ]

    config = HumanReview(
        requires_confirmation=True,
        confirmation_message="Proceed?",
        timeout=60,
    )
    data = config.to_dict()
    assert {k: data[k] for k in ("requires_confirmation", "confirmation_message", "timeout")} == {
        "requires_confirmation": True,
        "confirmation_message": "Proceed?",
        "timeout": 60,
    }
    restored = HumanReview.from_dict(data)
    assert restored == config


def _condition_workflow(on_reject: Any, with_else: bool = True) -> Any:
    from kern.db.sqlite import SqliteDb
    from kern.workflow import Workflow
    from kern.workflow.condition import Condition
    from kern.workflow.step import Step
    from kern.workflow.types import HumanReview, StepInput, StepOutput

    def analyze_data(step_input: StepInput) -> StepOutput:
        return StepOutput(content="Analyzed")

    def generate_report(step_input: StepInput) -> StepOutput:
        return StepOutput(content=f"Report: {step_input.previous_step_content}")

    def detailed_analysis(step_input: StepInput) -> StepOutput:
        return StepOutput(content="Detailed analysis: Full review completed")

    def quick_summary(step_input: StepInput) -> StepOutput:
        return StepOutput(content="Quick summary: Key highlights identified")

    return Workflow(
        name="analysis_workflow",
        db=SqliteDb(db_file="workflow.db"),
        steps=[
            Step(name="analyze", executor=analyze_data),
            Condition(
                name="analysis_depth",
                steps=[Step(name="detailed", executor=detailed_analysis)],
                else_steps=[Step(name="quick", executor=quick_summary)] if with_else else None,
                human_review=HumanReview(
                    requires_confirmation=True,
                    confirmation_message="Perform detailed analysis?",
                    on_reject=on_reject,
                ),
            ),
            Step(name="report", executor=generate_report),
        ],
    )


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("y", "Report: Detailed analysis: Full review completed"),
        ("n", "Report: Quick summary: Key highlights identified"),
    ],
)
def test_004_condition_snippet(
    answer: str, expected: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kern.workflow import OnReject

    monkeypatch.setattr(builtins, "input", lambda prompt="": answer)
    workflow = _condition_workflow(OnReject.else_branch)

    run_output = workflow.run("Analyze Q4 data")

    if run_output.is_paused:
        for req in run_output.steps_requiring_confirmation:
            print(f"Decision: {req.step_name}")
            print(f"Message: {req.confirmation_message}")

            if input("Confirm? (y/n): ").lower() == "y":
                req.confirm()
                print("Executing 'if' branch")
            else:
                req.reject()
                print("Executing 'else' branch")

        run_output = workflow.continue_run(run_output)

    print(run_output.content)
    assert run_output.content == expected
    assert "Message: Perform detailed analysis?" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("on_reject", "with_else", "expected", "status"),
    [
        ("else", False, "Report: Analyzed", RunStatus.COMPLETED),  # no else_steps: the condition is skipped
        ("skip", True, "Report: Analyzed", RunStatus.COMPLETED),
        ("cancel", True, "Condition 'analysis_depth' was rejected", RunStatus.CANCELLED),
    ],
)
def test_004_reject_table(on_reject: str, with_else: bool, expected: str, status: RunStatus) -> None:
    workflow = _condition_workflow(on_reject, with_else)
    run = workflow.run("x")
    run.steps_requiring_confirmation[0].reject()
    out = workflow.continue_run(run)
    assert out.status == status and out.content == expected


def test_004_evaluator_ignored_and_streaming_loop() -> None:
    from kern.db.sqlite import SqliteDb
    from kern.run.workflow import StepPausedEvent
    from kern.workflow import Workflow
    from kern.workflow.condition import Condition
    from kern.workflow.step import Step
    from kern.workflow.types import HumanReview

    workflow = Workflow(
        name="user_controlled_wf",
        db=SqliteDb(db_file="workflow.db"),
        steps=[
            Condition(
                name="user_controlled",
                evaluator=lambda s: False,  # evaluator is ignored when requires_confirmation=True
                steps=[Step(name="if_branch", executor=lambda s: "if ran")],
                else_steps=[Step(name="else_branch", executor=lambda s: "else ran")],
                human_review=HumanReview(
                    requires_confirmation=True,
                    confirmation_message="Proceed with if branch?",
                ),
            ),
        ],
    )
    paused_at = []
    for event in workflow.run("input", stream=True, stream_events=True):
        if isinstance(event, StepPausedEvent):
            paused_at.append(event.step_name)

    session = workflow.get_session()
    run_output = session.runs[-1]

    while run_output.is_paused:
        for req in run_output.steps_requiring_confirmation:
            req.confirm()  # or req.reject()

        for event in workflow.continue_run(run_output, stream=True, stream_events=True):
            pass

        session = workflow.get_session()
        run_output = session.runs[-1]
    assert paused_at == ["user_controlled"]
    assert run_output.content == "if ran"
