"""AgentOS's run routes: start a run of an agent, team or workflow, and continue a paused one."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from kern.agent import Agent
from kern.exceptions import RunNotFoundError, RunNotPausedError, WrongWorkflowError
from kern.os.http import Form, HTTPError, json_response, send_events
from kern.run.agent import RunOutput, RunRequirement, ToolExecution
from kern.run.requirement import StepRequirement
from kern.run.workflow import WorkflowRunOutput
from kern.team import Team
from kern.workflow import Workflow

SESSION_ID_REQUIRED = "session_id is required for this action"
_START_FIELDS = ("message", "stream", "session_id", "user_id", "background")
_CONTINUE_FIELDS = ("session_id", "user_id", "stream", "background", "input", "continue_from", "fork", "regenerate")
_UNSUPPORTED_CONTINUE = (
    ("input", "", "kern continues a paused run with decisions only, not with new input"),
    ("continue_from", "end", "kern continues a paused run where it paused"),
    ("fork", "false", "kern has no run forks"),
    ("regenerate", "false", "kern has no regeneration"),
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _by_id(kind: str, items: dict[str, Any], given: str) -> Any:
    found = items.get(given)
    if found is None:
        raise HTTPError(404, f"{kind} not found")
    return found


def _refuse_background(form: Form) -> None:
    form.refuse_set(
        "background",
        "false",
        "runs are served in the request (kern's runs are durable: a paused "
        "or interrupted run is continued through the continue route)",
    )


async def _answer(request: web.Request, form: Form, start: Callable[[bool], Any]) -> web.StreamResponse:
    """Run `start(stream)`: the output's JSON, or its events as server-sent events (the reference's
    default, `stream=true`)."""
    if form.flag("stream", True):
        return await send_events(request, start(True))
    try:
        output = await start(False)
    except RunNotFoundError as exc:
        raise HTTPError(404, str(exc)) from exc
    except RunNotPausedError as exc:
        raise HTTPError(409, str(exc)) from exc
    except WrongWorkflowError as exc:
        raise HTTPError(404, str(exc)) from exc
    except ValueError as exc:
        raise HTTPError(400, str(exc)) from exc
    return json_response(api_dict(output))


def api_dict(output: RunOutput | WorkflowRunOutput) -> dict[str, Any]:
    """A run's output as the routes answer it: its `to_dict()`, a workflow's step requirements each in
    their own `to_dict()` form (with the reference's `requires_*` flags and messages beside kern's)."""
    data = output.to_dict()
    if isinstance(output, WorkflowRunOutput):
        data["step_requirements"] = [r.to_dict() for r in output.step_requirements]
    return data


async def _paused_run(agent: Agent, run_id: str, session_id: str | None) -> RunOutput:
    """The stored run if it is this agent's (or team's) and in this session, else 404."""
    try:
        run = await agent.aget_run(run_id)
    except RunNotFoundError:
        raise HTTPError(404, "Run not found") from None
    owner = run.team_id if agent.kind == Team.kind else run.agent_id
    if owner != agent.id or (session_id and run.session_id != session_id):
        raise HTTPError(404, "Run not found")
    return run


def _requirements_from_tools(run: RunOutput, tools: list[dict[str, Any]]) -> list[RunRequirement]:
    """The reference's agent route takes the paused tool calls back (`tools`); kern resolves requirements:
    each given call decides the pending requirement with the same `tool_call_id`."""
    try:
        given = [ToolExecution.from_dict(tool) for tool in tools]
    except Exception as exc:
        raise HTTPError(400, f"Invalid structure or content for tools: {exc}") from exc
    by_call = {tool.tool_call_id: tool for tool in given if tool.tool_call_id}
    out = []
    for req in run.requirements:
        tool = by_call.get(req.tool_execution.tool_call_id or "")
        if tool is not None and req.status == "pending":
            out.append(RunRequirement(tool_execution=tool, id=req.id))
    return out


def _parse_requirements(data: list[dict[str, Any]] | None) -> list[RunRequirement]:
    try:
        return [RunRequirement.from_dict(item) for item in data or []]
    except Exception as exc:
        raise HTTPError(400, f"Invalid structure or content for requirements: {exc}") from exc


def start_route(kind: str, components: dict[str, Agent | Workflow]) -> Handler:
    """POST /{agents|teams|workflows}/{id}/runs: form fields `message` (required), `stream`, `session_id`,
    `user_id`."""

    async def handle(request: web.Request) -> web.StreamResponse:
        component = _by_id(kind, components, request.match_info["component_id"])
        form = await Form.read(request)
        form.check_known(_START_FIELDS)
        _refuse_background(form)
        message = form.text("message", required=True)
        session_id = form.text("session_id") or str(uuid.uuid4())
        user_id = form.text("user_id") or None
        return await _answer(
            request,
            form,
            lambda stream: component.arun(message, stream=stream, session_id=session_id, user_id=user_id),
        )

    return handle


def continue_agent_route(kind: str, components: dict[str, Agent]) -> Handler:
    """POST /agents/{id}/runs/{run_id}/continue (`tools`: the paused tool calls, decided) and
    POST /teams/{id}/runs/{run_id}/continue (`requirements`: the paused requirements, decided). Either may
    be left out when the decisions are already in the store (approval records resolved through
    /approvals)."""
    field = "tools" if kind == "Agent" else "requirements"

    async def handle(request: web.Request) -> web.StreamResponse:
        agent = _by_id(kind, components, request.match_info["component_id"])
        form = await Form.read(request)
        form.check_known((field, *_CONTINUE_FIELDS))
        decisions = form.json_list(field)
        _refuse_background(form)
        for name, default, why in _UNSUPPORTED_CONTINUE:
            form.refuse_set(name, default, why)
        session_id = form.text("session_id")
        if not session_id:
            raise HTTPError(400, SESSION_ID_REQUIRED)
        run_id = request.match_info["run_id"]
        run = await _paused_run(agent, run_id, session_id)
        requirements = (
            _requirements_from_tools(run, decisions or []) if field == "tools" else _parse_requirements(decisions)
        )
        return await _answer(
            request,
            form,
            lambda stream: agent.acontinue_run(run_id=run_id, requirements=requirements, stream=stream),
        )

    return handle


def continue_workflow_route(workflows: dict[str, Workflow]) -> Handler:
    """POST /workflows/{id}/runs/{run_id}/continue: `step_requirements`, the paused step requirements
    decided (left out: the pause is resolved as stored)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        workflow = _by_id("Workflow", workflows, request.match_info["component_id"])
        form = await Form.read(request)
        form.check_known(("step_requirements", "session_id", "user_id", "stream"))
        data = form.json_list("step_requirements")
        run_id = request.match_info["run_id"]
        try:
            stored = await workflow.db.load_run(run_id)
        except RunNotFoundError:
            raise HTTPError(404, "Run not found") from None
        session_id = form.text("session_id")
        if stored.output.get("workflow_id") not in (None, workflow.id) or stored.workflow_name != workflow.name:
            raise HTTPError(404, "Run not found")
        if session_id and stored.session_id != session_id:
            raise HTTPError(404, "Run not found")
        if stored.status != "PAUSED":
            raise HTTPError(409, f"run is not paused (status={stored.status})")
        try:
            requirements = [StepRequirement.from_dict(item) for item in data or []]
        except Exception as exc:
            raise HTTPError(400, f"Invalid structure or content for step_requirements: {exc}") from exc
        return await _answer(
            request,
            form,
            lambda stream: workflow.acontinue_run(run_id=run_id, step_requirements=requirements, stream=stream),
        )

    return handle
