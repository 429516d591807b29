"""The scripted OpenAI-compatible server of `bot.scripted_model` as a pytest plugin: its fixtures for
tests of agents, and the names tests import (`FakeOpenAI` is `ScriptedModel`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from bot.scripted_model import Reply, Script, call, calls, text, tool_results
from bot.scripted_model import ScriptedModel as FakeOpenAI

__all__ = ["FakeOpenAI", "Reply", "Script", "call", "calls", "echo_tool_results", "text", "tool_results"]


@contextmanager
def fake_openai_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


# ----- fixtures for tests of agents on the scripted server (import them into the test module) --------
@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    """The scripted OpenAI-compatible server, one per test module."""
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(params=["chat", "responses"])
def model_factory(request: pytest.FixtureRequest, server: FakeOpenAI) -> Callable[[], Any]:
    """A new model on the scripted server, for each of the two OpenAI APIs."""
    from kern.models.openai import OpenAIChat, OpenAIResponses

    cls = OpenAIChat if request.param == "chat" else OpenAIResponses
    return lambda: cls(id="test-model", base_url=server.base_url, api_key="test")


def echo_tool_results(body: dict[str, Any]) -> Reply:
    """Answer with every tool result the model was sent."""
    return text("Final: " + " | ".join(tool_results(body)))
