"""kern's run methods type as documented for a user's type checker (the package ships `py.typed`):
without `stream` they give the run's output, with `stream=True` an iterator of events, and an unknown
option is an error. mypy checks a user's snippet against this tree, with the project's configuration."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

USER_CODE = """
from collections.abc import Iterator
from typing import assert_type

from kern.agent import Agent
from kern.run.agent import RunEvent, RunOutput
from kern.run.workflow import WorkflowEvent, WorkflowRunOutput
from kern.team import Team
from kern.workflow import Workflow


async def use(wf: Workflow, agent: Agent, team: Team, flag: bool) -> None:
    assert_type(wf.run("x", session_id="s"), WorkflowRunOutput)
    assert_type(wf.run("x", stream=True, stream_events=True), Iterator[WorkflowEvent | RunEvent])
    assert_type(wf.run("x", stream=flag), WorkflowRunOutput | Iterator[WorkflowEvent | RunEvent])
    assert_type(wf.continue_run(run_id="r"), WorkflowRunOutput)
    assert_type(await wf.arun("x", run_id="r"), WorkflowRunOutput)
    assert_type(await wf.acontinue_run(run_id="r", now=1.0), WorkflowRunOutput)
    async for event in wf.arun("x", stream=True):
        assert_type(event, WorkflowEvent | RunEvent)
    async for event in await wf.acontinue_run(run_id="r", stream=True):
        assert_type(event, WorkflowEvent | RunEvent)
    assert_type(agent.run("hi", user_id="u"), RunOutput)
    assert_type(agent.continue_run(run_id="r", requirements=[]), RunOutput)
    assert_type(await agent.arun("hi"), RunOutput)
    async for item in agent.acontinue_run(run_id="r", stream=True):
        assert_type(item, RunEvent)
    assert_type(team.run("hi", stream=True), Iterator[RunEvent])
"""


def mypy(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("mypy", reason="mypy is in the dev extra: pip install -e '.[dev]'")
    snippet = tmp_path / "user_code.py"
    snippet.write_text(code)
    # Run from the project root so `kern` resolves to this tree; the cache is the one `make test` warms.
    command = [sys.executable, "-m", "mypy", "--config-file", "pyproject.toml", "--no-error-summary", str(snippet)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_run_methods_type_by_stream(tmp_path: Path) -> None:
    result = mypy(tmp_path, USER_CODE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_expectation_and_an_unknown_option_are_reported(tmp_path: Path) -> None:
    result = mypy(
        tmp_path,
        "from collections.abc import Iterator\nfrom typing import assert_type\n"
        "from kern.run.workflow import WorkflowRunOutput\nfrom kern.workflow import Workflow\n\n\n"
        "def use(wf: Workflow) -> None:\n"
        "    assert_type(wf.run('x', stream=True), WorkflowRunOutput)\n"
        "    wf.run('x', sesion_id='s')\n",
    )
    assert result.returncode == 1
    assert 'user_code.py:8: error: Expression is of type "Iterator[WorkflowEvent | RunEvent]"' in result.stdout
    assert 'user_code.py:9: error: Unexpected keyword argument "sesion_id"' in result.stdout
