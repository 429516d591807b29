"""The workflows kern-bot offers when KERN_WORKFLOWS is not set: one per kind of pause, no model needed,
and one whose pause is sent to its approvers by DM.

An agent example whose tool call waits for approval is added when a model is at hand: the server at
OPENAI_BASE_URL, or else (`kern-bot dev`) the local scripted model of `bot.scripted_model`, which answers
from a script and says so.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field

from bot.blocks.text import escape
from bot.policy import Approvers
from bot.registry import BotWorkflow
from kern.run.requirement import StepRequirement
from kern.run.workflow import WorkflowRunOutput
from kern.workflow import (
    Condition,
    Loop,
    OnError,
    OnReject,
    OnTimeout,
    Parallel,
    Router,
    Step,
    StepInput,
    StepOutput,
    Steps,
    UserInputField,
    Workflow,
)


def _plan(step_input: StepInput) -> str:
    return f"Plan for {step_input.input or 'the default service'}: build, migrate, switch traffic."


def _deploy(step_input: StepInput) -> str:
    return f"Deployed {step_input.input or 'the default service'} ({step_input.previous_step_content})"


def _deploy_context(run: WorkflowRunOutput, req: StepRequirement) -> list[dict[str, Any]]:
    """The deploy example's context renderer (`BotWorkflow(context=...)`): what a person checks before
    approving, as Block Kit fields. The run's input is a person's text: escaped, as blocks are the author's."""
    service = escape(str(run.input or "the default service"))
    fields = [("Service", service), ("Environment", "production"), ("Rollback", "the previous build stays warm")]
    return [{"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in fields]}]


def _purchase(step_input: StepInput) -> str:
    return f"Ordered {step_input.input or 'a new laptop'}."


def _report(step_input: StepInput) -> str:
    values = step_input.additional_data["user_input"]
    charts = "with charts" if values.get("include_charts") else "without charts"
    return f"Report '{values['title']}' as {values['format']}, {values.get('pages') or 1} page(s), {charts}."


def _draft(step_input: StepInput) -> StepOutput:
    feedback = step_input.additional_data.get("rejection_feedback")
    text = f"Dear team,\n\nThis week we shipped {step_input.input or 'several fixes'}."
    if feedback:
        text += f"\n\n(Revised after feedback: {feedback})"
    return StepOutput(content=text)


def _route(name: str) -> Callable[[StepInput], str]:
    def run(step_input: StepInput) -> str:
        return f"Handled '{step_input.input}' as {name}"

    run.__name__ = name
    return run


class Depth(enum.StrEnum):
    quick = "quick"
    thorough = "thorough"


class ResearchBrief(BaseModel):
    """What `/kern run research` asks for in its start form (generated from this model)."""

    topic: str = Field(description="What to research", min_length=3, max_length=120)
    depth: Depth = Field(Depth.quick, description="Quick: a summary; thorough: a report")
    sources: int = Field(3, ge=1, le=10, description="How many sources to read (1-10)")
    audience: Literal["engineering", "product", "leadership"] = "engineering"
    focus_areas: list[str] = Field(default_factory=list, description="Optional")
    include_links: bool = True


def _research(step_input: StepInput) -> str:
    brief = step_input.input
    assert isinstance(brief, ResearchBrief)  # the workflow's input_schema parsed it
    focus = f", focusing on {', '.join(brief.focus_areas)}" if brief.focus_areas else ""
    links = " with links" if brief.include_links else ""
    return (
        f"A {brief.depth.value} brief on {brief.topic!r} for {brief.audience}, "
        f"from {brief.sources} sources{focus}{links}."
    )


def _refine(step_input: StepInput) -> str:
    previous = step_input.previous_step_content or str(step_input.input or "idea")
    return previous + " +refined"


_flaky_calls: dict[str, int] = {}


def _flaky(step_input: StepInput) -> str:
    count = _flaky_calls[step_input.run_id or ""] = _flaky_calls.get(step_input.run_id or "", 0) + 1
    if count == 1:
        raise ConnectionError("upstream timed out (this example fails on its first try)")
    return "Fetched after a retry"


def _use(step_input: StepInput) -> str:
    fetched = step_input.previous_step_content
    return f"Used: {fetched}" if fetched is not None else "Nothing to use: the fetch step was skipped."


def _shard(n: int) -> Callable[[StepInput], str]:
    def run(step_input: StepInput) -> str:
        time.sleep(0.05)
        return f"shard {n} done"

    run.__name__ = f"shard_{n}"
    return run


def example_workflows(scripted_model_url: str | None = None) -> list[BotWorkflow]:
    """The examples; with OPENAI_BASE_URL or `scripted_model_url`, the agent example too."""
    workflows = [
        BotWorkflow(
            Workflow(
                name="deploy",
                description="Plan, then deploy after an approval (reject cancels)",
                steps=[
                    Step(name="plan", executor=_plan),
                    Step(
                        name="deploy",
                        executor=_deploy,
                        requires_confirmation=True,
                        confirmation_message="Deploy to production?",
                        on_reject=OnReject.cancel,
                    ),
                ],
            ),
            context=_deploy_context,
        ),
        BotWorkflow(
            Workflow(
                name="purchase",
                description="Asks U1 and UBOSS by DM (notify='dm'); only they may answer; a reminder after 2 min",
                steps=[
                    Step(
                        name="approve_purchase",
                        executor=_purchase,
                        requires_confirmation=True,
                        confirmation_message="Approve this purchase?",
                        on_reject=OnReject.cancel,
                    ),
                ],
            ),
            approvers=Approvers(users=("U1", "UBOSS"), remind_after=120, max_reminders=2),
            notify="dm",
        ),
        BotWorkflow(
            Workflow(
                name="report",
                description="Asks for report settings in a form",
                steps=[
                    Step(
                        name="report",
                        executor=_report,
                        requires_user_input=True,
                        user_input_message="Configure the report",
                        user_input_schema=[
                            UserInputField(name="title", description="Shown on the first page"),
                            UserInputField(name="format", allowed_values=["pdf", "csv", "html"], value="pdf"),
                            UserInputField(
                                name="pages", field_type="int", required=False, description="1-50", ge=1, le=50
                            ),
                            UserInputField(name="include_charts", field_type="bool", required=False),
                        ],
                    ),
                ],
            )
        ),
        BotWorkflow(
            Workflow(
                name="research",
                description="Starts from a form generated from its input schema, then asks before it runs",
                input_schema=ResearchBrief,
                steps=[
                    Step(
                        name="research",
                        executor=_research,
                        requires_confirmation=True,
                        confirmation_message="Run the research now?",
                    ),
                ],
            )
        ),
        BotWorkflow(
            Workflow(
                name="newsletter",
                description="Drafts text for review: approve, edit or send back",
                steps=[
                    Step(
                        name="draft",
                        executor=_draft,
                        requires_output_review=True,
                        output_review_message="Review the newsletter draft",
                        on_reject=OnReject.retry,
                        hitl_max_retries=3,
                    ),
                ],
            )
        ),
        BotWorkflow(
            Workflow(
                name="triage",
                description="You pick the route",
                steps=[
                    Router(
                        name="triage",
                        choices=[Step(name=n, executor=_route(n)) for n in ("bug", "feature", "question")],
                        requires_user_input=True,
                        user_input_message="How should this be handled?",
                    ),
                ],
            )
        ),
        BotWorkflow(
            Workflow(
                name="refine",
                description="Reviews each loop iteration",
                steps=[
                    Loop(
                        name="refine",
                        steps=[Step(name="refine_once", executor=_refine)],
                        max_iterations=3,
                        requires_iteration_review=True,
                        on_reject=OnReject.retry,
                        forward_iteration_output=True,
                    ),
                ],
            )
        ),
        BotWorkflow(
            Workflow(
                name="analysis",
                description="You choose the branch of a Condition",
                steps=[
                    Condition(
                        name="depth",
                        steps=[Step(name="detailed", executor=lambda s: "Detailed analysis done")],
                        else_steps=[Step(name="quick", executor=lambda s: "Quick summary done")],
                        requires_confirmation=True,
                        confirmation_message="Run the detailed analysis?",
                    ),
                ],
            )
        ),
        BotWorkflow(
            Workflow(
                name="flaky",
                description="A step fails; you retry or skip it",
                steps=[
                    Step(name="fetch", executor=_flaky, on_error=OnError.pause),
                    Step(name="use", executor=_use),
                ],
            )
        ),
        BotWorkflow(
            Workflow(
                name="batch",
                description="Confirms a group of parallel steps",
                steps=[
                    Steps(
                        name="prepare",
                        steps=[Step(name="collect", executor=lambda s: "collected")],
                        requires_confirmation=True,
                        confirmation_message="Run the preparation steps?",
                    ),
                    Parallel(
                        *[Step(name=f"shard_{i}", executor=_shard(i)) for i in range(3)],
                        name="shards",
                        requires_confirmation=True,
                        confirmation_message="Process all shards in parallel?",
                    ),
                ],
            )
        ),
        BotWorkflow(
            Workflow(
                name="timed",
                description="Approves itself after 60 s if nobody answers",
                steps=[
                    Step(
                        name="rollout",
                        executor=lambda s: "Rolled out",
                        requires_confirmation=True,
                        confirmation_message="Roll out the canary?",
                        hitl_timeout=60,
                        on_timeout=OnTimeout.approve,
                    ),
                ],
            )
        ),
    ]
    if os.environ.get("OPENAI_BASE_URL"):
        workflows.extend([_agent_example(None), _conversation_example(None)])
    elif scripted_model_url:
        workflows.extend([_agent_example(scripted_model_url), _conversation_example(scripted_model_url)])
    return workflows


def _conversation_example(scripted_model_url: str | None) -> BotWorkflow:
    """The agent that answers when the bot is mentioned or DMed (`BotAgent`): it sends alerts, each after a
    person allows it on the tool-call card in the thread."""
    from bot.registry import BotAgent
    from kern.agent import Agent
    from kern.examples.dual_confirmation import send_alert
    from kern.models.openai import OpenAIChat

    if scripted_model_url:
        model = OpenAIChat(id="scripted", base_url=scripted_model_url, api_key="scripted")
    else:
        model = OpenAIChat(id=os.environ.get("KERN_MODEL", "gpt-4o-mini"))
    agent = Agent(
        name="Assistant",
        model=model,
        tools=[send_alert],
        instructions="Answer briefly. Send alerts with send_alert when asked.",
        description="Answers when you mention the bot or DM it; it asks before it sends an alert",
    )
    prompts = [  # offered in Slack's assistant pane
        {"title": "Send an alert", "message": "alert Osaka about heavy rain"},
        {"title": "What can you do?", "message": "What can you do?"},
    ]
    return BotAgent(agent, name="assistant", suggested_prompts=prompts)


def _agent_example(scripted_model_url: str | None) -> BotWorkflow:
    from kern.agent import Agent
    from kern.examples.dual_confirmation import send_alert
    from kern.models.openai import OpenAIChat

    if scripted_model_url:
        model = OpenAIChat(id="scripted", base_url=scripted_model_url, api_key="scripted")
        description = "An agent whose tool call waits for approval (a scripted model, not an LLM: no key needed)"
    else:
        model = OpenAIChat(id=os.environ.get("KERN_MODEL", "gpt-4o-mini"))
        description = "An agent whose tool call waits for approval"
    agent = Agent(
        name="AlertAgent",
        model=model,
        tools=[send_alert],
        instructions="Send alerts with send_alert when asked.",
    )
    return BotWorkflow(
        Workflow(
            name="alert",
            description=description,
            steps=[
                Step(
                    name="send_alert",
                    agent=agent,
                    requires_confirmation=True,
                    confirmation_message="Let the agent send an alert?",
                ),
            ],
        )
    )
