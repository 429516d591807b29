"""kern.os.AgentOS over real HTTP (httpx against the served aiohttp app), with models answered by the
scripted OpenAI-compatible server, on SQLite and PostgreSQL: every human-in-the-loop route the reference's
AgentOS cookbook drives, and their failure paths."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from kern.agent import Agent
from kern.approval import approval
from kern.db.base import BaseDb
from kern.models.openai import OpenAIChat
from kern.os import AgentOS
from kern.team import Team
from kern.tools import tool
from kern.workflow import OnReject, Step, StepInput, StepOutput, Workflow
from tests.conftest import unique
from tests.openai_stub import FakeOpenAI, Reply, call, echo_tool_results, text, tool_results

ROOT = Path(__file__).resolve().parent.parent
MIRROR = Path(os.environ.get("KERN_REFERENCE_MIRROR", "/work/.mirror/agno-agi+agno/repo"))
restarted: list[str] = []


@tool(requires_confirmation=True)
def restart_service(service: str) -> str:
    """Restart one service."""
    restarted.append(service)
    return f"Restarted {service}"


@tool(requires_user_input=True, user_input_fields=["name"])
def collect_name(name: str = "") -> str:
    """Record the traveller's name."""
    return f"Traveller: {name}"


@tool(external_execution=True)
def send_email(to: str, subject: str) -> str:
    """Send an email (runs in the client)."""
    return ""


@approval(type="required")
@tool()
def deploy_release(service: str) -> str:
    """Deploy a service."""
    return f"Deployed {service}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(agent_os: AgentOS) -> Iterator[httpx.Client]:
    """The app served on a free port by its own event loop in a thread; an httpx client on it."""
    app = agent_os.get_app()
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def model(server: FakeOpenAI) -> OpenAIChat:
    return OpenAIChat(id="test-model", base_url=server.base_url, api_key="test")


def start(client: httpx.Client, path: str, message: str, session_id: str) -> dict[str, Any]:
    response = client.post(path, data={"message": message, "session_id": session_id, "stream": "false"})
    assert response.status_code == 200, response.text
    return dict(response.json())


def proceed(client: httpx.Client, path: str, **fields: str) -> httpx.Response:
    return client.post(path, data={"stream": "false", **fields})


# ----- agents: confirm, reject, user input ----------------------------------------------------------------
def test_confirm_and_reject_through_continue(db: BaseDb, server: FakeOpenAI) -> None:
    agent = Agent(name=unique("ops"), id=unique("ops"), model=model(server), db=db, tools=[restart_service])
    with serving(AgentOS(db=db, agents=[agent])) as client:
        for confirmed in (True, False):
            service = unique("svc")
            server.script(call("restart_service", service=service), echo_tool_results)
            paused = start(client, f"/agents/{agent.id}/runs", "Restart it", unique("s"))
            assert paused["status"] == "PAUSED"
            tools = paused["tools"]
            assert [t["tool_name"] for t in tools] == ["restart_service"] and tools[0]["requires_confirmation"]
            tools[0]["confirmed"] = confirmed
            if not confirmed:
                tools[0]["confirmation_note"] = "not during business hours"
            url = f"/agents/{agent.id}/runs/{paused['run_id']}/continue"
            done = proceed(client, url, tools=json.dumps(tools), session_id=paused["session_id"])
            assert done.status_code == 200, done.text
            body = done.json()
            assert body["status"] == "COMPLETED" and body["run_id"] == paused["run_id"]
            assert (service in restarted) is confirmed
            if confirmed:
                assert f"Restarted {service}" in body["content"]
            else:
                assert "not during business hours" in body["content"]
            # the run is finished: continuing it again is a conflict, and nothing runs twice
            again = proceed(client, url, tools=json.dumps(tools), session_id=paused["session_id"])
            assert again.status_code == 409, again.text
            assert restarted.count(service) == (1 if confirmed else 0)


def test_user_input_through_continue(db: BaseDb, server: FakeOpenAI) -> None:
    agent = Agent(name=unique("survey"), id=unique("survey"), model=model(server), db=db, tools=[collect_name])
    server.script(call("collect_name"), echo_tool_results)
    with serving(AgentOS(db=db, agents=[agent])) as client:
        paused = start(client, f"/agents/{agent.id}/runs", "Plan a trip", unique("s"))
        tool_call = paused["tools"][0]
        assert tool_call["requires_user_input"]
        for field in tool_call["user_input_schema"]:
            field["value"] = "Ada"
        tool_call["answered"] = True
        url = f"/agents/{agent.id}/runs/{paused['run_id']}/continue"
        done = proceed(client, url, tools=json.dumps([tool_call]), session_id=paused["session_id"])
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "COMPLETED" and "Traveller: Ada" in done.json()["content"]


# ----- teams: external execution through requirements ---------------------------------------------------
def test_team_external_execution_through_requirements(db: BaseDb, server: FakeOpenAI) -> None:
    member = Agent(name="Email Agent", model=model(server), db=db, tools=[send_email])
    team = Team(id=unique("comms"), name=unique("comms"), model=model(server), db=db, members=[member])
    server.script(
        call("delegate_task_to_member", member_name="Email Agent", task="email ops"),
        call("send_email", to="ops@example.com", subject="Maintenance"),
        echo_tool_results,  # the member's answer
        echo_tool_results,  # the leader's
    )
    with serving(AgentOS(db=db, teams=[team])) as client:
        paused = start(client, f"/teams/{team.id}/runs", "Email ops", unique("s"))
        assert paused["status"] == "PAUSED"
        requirements = paused["requirements"]
        assert requirements[0]["tool_execution"]["external_execution_required"]
        assert requirements[0]["tool_execution"]["tool_args"]["to"] == "ops@example.com"
        requirements[0]["external_execution_result"] = "accepted as msg-1"
        url = f"/teams/{team.id}/runs/{paused['run_id']}/continue"
        done = proceed(client, url, requirements=json.dumps(requirements), session_id=paused["session_id"])
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "COMPLETED" and "accepted as msg-1" in done.json()["content"]


# ----- approval records ---------------------------------------------------------------------------------
def test_approval_record_resolved_through_the_api(db: BaseDb, server: FakeOpenAI) -> None:
    agent = Agent(name=unique("deployer"), id=unique("deployer"), model=model(server), db=db, tools=[deploy_release])
    server.script(call("deploy_release", service="billing"), echo_tool_results)
    with serving(AgentOS(db=db, agents=[agent])) as client:
        paused = start(client, f"/agents/{agent.id}/runs", "Deploy billing", unique("s"))
        listed = client.get("/approvals", params={"run_id": paused["run_id"], "status": "pending"}).json()
        assert listed["meta"]["total_count"] == 1
        record = listed["data"][0]
        assert record["tool_name"] == "deploy_release" and record["source_type"] == "agent"
        assert record["session_id"] == paused["session_id"] and record["agent_id"] == agent.id
        assert client.get("/approvals/count").json()["count"] >= 1
        url = f"/agents/{agent.id}/runs/{paused['run_id']}/continue"
        early = proceed(client, url, session_id=paused["session_id"])
        assert early.status_code == 400 and "still pending" in early.json()["detail"]

        resolve = f"/approvals/{record['id']}/resolve"
        bad = client.post(resolve, json={"status": "maybe"})
        assert bad.status_code == 422
        resolved = client.post(resolve, json={"status": "approved", "resolved_by": "cookbook-admin"})
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["status"] == "approved" and resolved.json()["resolved_by"] == "cookbook-admin"
        twice = client.post(resolve, json={"status": "rejected", "resolved_by": "eve"})
        assert twice.status_code == 409 and "approved" in twice.json()["detail"]

        done = proceed(client, url, session_id=paused["session_id"])
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "COMPLETED" and "Deployed billing" in done.json()["content"]
        stored = client.get(f"/approvals/{record['id']}").json()
        assert stored["resolved_by"] == "cookbook-admin" and stored["run_status"] == "COMPLETED"
        status = client.get(f"/approvals/{record['id']}/status").json()
        assert status == {**status, "status": "approved", "resolved_by": "cookbook-admin"}
        assert client.get("/approvals/no-such-id").status_code == 404
        assert client.post("/approvals/no-such-id/resolve", json={"status": "approved"}).status_code == 404
        assert client.get("/approvals", params={"run_id": paused["run_id"], "source_type": "team"}).json()["data"] == []
    decided = asyncio.run(db.list_approvals(run_id=paused["run_id"]))
    assert [(a["status"], a["resolved_by"]) for a in decided] == [("approved", "cookbook-admin")]


# ----- workflows ----------------------------------------------------------------------------------------
def inspect(step_input: StepInput) -> StepOutput:
    return StepOutput(content=f"Inspected {step_input.input}")


def test_workflow_pause_continued_through_step_requirements(db: BaseDb) -> None:
    workflow = Workflow(
        id=unique("release"),
        name=unique("release"),
        db=db,
        steps=[Step(name="Inspect", executor=inspect, requires_confirmation=True, on_reject=OnReject.cancel)],
    )
    with serving(AgentOS(db=db, workflows=[workflow])) as client:
        paused = start(client, f"/workflows/{workflow.id}/runs", "billing 4.0", unique("s"))
        assert paused["status"] == "PAUSED"
        (requirement,) = paused["step_requirements"]
        assert requirement["requires_confirmation"] and requirement["step_name"] == "Inspect"
        requirement["confirmed"] = True
        url = f"/workflows/{workflow.id}/runs/{paused['run_id']}/continue"
        bad = proceed(client, url, step_requirements="{oops", session_id=paused["session_id"])
        assert bad.status_code == 400 and "step_requirements" in bad.json()["detail"]
        done = proceed(client, url, step_requirements=json.dumps([requirement]), session_id=paused["session_id"])
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "COMPLETED" and done.json()["content"] == "Inspected billing 4.0"
        again = proceed(client, url, step_requirements=json.dumps([requirement]), session_id=paused["session_id"])
        assert again.status_code == 409
        assert proceed(client, f"/workflows/{workflow.id}/runs/nope/continue").status_code == 404


# ----- failure paths and streaming ----------------------------------------------------------------------
def test_failure_paths(db: BaseDb, server: FakeOpenAI) -> None:
    agent = Agent(name=unique("ops"), id=unique("ops"), model=model(server), db=db, tools=[restart_service])
    other = Agent(name=unique("other"), id=unique("other"), model=model(server), db=db)
    server.script(call("restart_service", service="db"), echo_tool_results)
    with serving(AgentOS(db=db, agents=[agent, other])) as client:
        paused = start(client, f"/agents/{agent.id}/runs", "Restart db", unique("s"))
        url = f"/agents/{agent.id}/runs/{paused['run_id']}/continue"
        session = paused["session_id"]

        malformed = proceed(client, url, tools="[not json", session_id=session)
        assert malformed.status_code == 400 and "tools" in malformed.json()["detail"]
        assert proceed(client, url, tools="[1, 2]", session_id=session).status_code == 400
        missing_session = proceed(client, url, tools="[]")
        assert missing_session.status_code == 400 and "session_id" in missing_session.json()["detail"]
        unresolved = proceed(client, url, tools="[]", session_id=session)
        assert unresolved.status_code == 400 and "restart_service" in unresolved.json()["detail"]
        assert proceed(client, f"/agents/{agent.id}/runs/no-such-run/continue", session_id=session).status_code == 404
        assert (
            proceed(client, f"/agents/{other.id}/runs/{paused['run_id']}/continue", session_id=session).status_code
            == 404
        )
        assert proceed(client, url, tools="[]", session_id="another-session").status_code == 404
        assert proceed(client, "/agents/nobody/runs/x/continue", session_id=session).json() == {
            "detail": "Agent not found"
        }
        assert client.post("/agents/nobody/runs", data={"message": "hi"}).status_code == 404
        assert client.post(f"/agents/{agent.id}/runs", data={"stream": "false"}).status_code == 422
        unknown = client.post(f"/agents/{agent.id}/runs", data={"message": "hi", "temperature": "2"})
        assert unknown.status_code == 400 and "temperature" in unknown.json()["detail"]
        forked = proceed(client, url, tools="[]", session_id=session, fork="true")
        assert forked.status_code == 400 and "fork" in forked.json()["detail"]
        # the refusals changed nothing: the run still waits, and the right decision continues it
        tools = paused["tools"]
        tools[0]["confirmed"] = False
        done = proceed(client, url, tools=json.dumps(tools), session_id=session)
        assert done.status_code == 200 and done.json()["status"] == "COMPLETED", done.text
        assert "db" not in restarted


def test_streamed_run_answers_with_server_sent_events(db: BaseDb, server: FakeOpenAI) -> None:
    agent = Agent(name=unique("ops"), id=unique("ops"), model=model(server), db=db, tools=[restart_service])
    server.script(call("restart_service", service="cache"))
    with serving(AgentOS(db=db, agents=[agent])) as client:
        response = client.post(f"/agents/{agent.id}/runs", data={"message": "Restart cache", "session_id": "s1"})
        assert response.headers["content-type"].startswith("text/event-stream")
        events = re.findall(r"^event: (\w+)$", response.text, flags=re.M)
        assert events[0] == "RunStarted" and events[-1] == "RunPaused"
        last = json.loads(response.text.strip().rsplit("data: ", 1)[1])
        assert last["run_id"] and last["tools"][0]["tool_name"] == "restart_service"


def test_constructor_arguments(sqlite_db: BaseDb) -> None:
    with pytest.raises(TypeError, match="no_such_option"):
        AgentOS(db=sqlite_db, no_such_option=True)  # type: ignore[call-arg]
    with pytest.raises(NotImplementedError, match="authorization"):
        AgentOS(db=sqlite_db, authorization=True)
    with pytest.raises(ValueError, match="unique"):
        AgentOS(agents=[Agent(name="a", id="x", db=sqlite_db), Agent(name="b", id="x", db=sqlite_db)])
    with pytest.raises(TypeError, match="Agent objects"):
        AgentOS(agents=[object()])  # type: ignore[list-item]
    quiet = AgentOS(id="os", db=sqlite_db, telemetry=False, auto_provision_dbs=False)
    assert quiet.get_app() is quiet.get_app()


# ----- one of the reference's own examples, its --demo client against kern's server ---------------------
def _generic(body: dict[str, Any]) -> Reply:
    """Call the first offered tool until a result is there, then report the results."""
    results = tool_results(body)
    offered = [t.get("function", t) for t in body.get("tools") or []]
    if offered and not results:
        params = offered[0].get("parameters", {}).get("properties", {})
        return call(offered[0]["name"], **{name: "example" for name in params})
    return text("Done: " + "; ".join(results))


def test_reference_example_demo_client(tmp_path: Path) -> None:
    example = "cookbook/05_agent_os/05_human_in_the_loop/with_approval_record.py"
    shown = subprocess.run(["git", "-C", str(MIRROR), "show", f"HEAD:{example}"], capture_output=True, text=True)
    if shown.returncode != 0:
        pytest.skip(f"the reference's mirror is not at {MIRROR} (set KERN_REFERENCE_MIRROR)")
    port = free_port()
    source = re.sub(r"agno", "kern", shown.stdout).replace("localhost:7777", f"localhost:{port}")
    path = tmp_path / "example_demo.py"
    path.write_text(source, encoding="utf-8")
    with FakeOpenAI(fallback=_generic) as fake:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "OPENAI_BASE_URL": fake.base_url,
            "OPENAI_API_KEY": "test",
            "AGENT_OS_PORT": str(port),
        }
        server = subprocess.Popen([sys.executable, path.name], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and server.poll() is None:
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.1)
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            demo = subprocess.run(
                [sys.executable, path.name, "--demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
            )
        finally:
            server.terminate()
            server.wait(10)
    assert demo.returncode == 0, demo.stderr
    assert "Resolved by: cookbook-admin" in demo.stdout and "Final status: COMPLETED" in demo.stdout
