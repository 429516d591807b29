"""kern's Chat Completions stream read as plain JSON events (kern/models/openai: the client's typed chunks cost
the event loop too much per chunk): text and tool calls as they come, an error event mid-stream raised as the
openai client's `APIError`, an HTTP error as its `APIStatusError`. Against a local server speaking the API's
server-sent events, through the real `openai` client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from aiohttp import web

from kern.models.base import ModelResponse
from kern.models.openai import OpenAIChat

EVENTS: list[Any] = []  # what the server streams next: dicts (as `data:` events), or an int (an HTTP status)


async def completions(request: web.Request) -> web.StreamResponse:
    if EVENTS and isinstance(EVENTS[0], int):
        return web.json_response({"error": {"message": "overloaded", "type": "server_error"}}, status=EVENTS[0])
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for event in EVENTS:
        await response.write(f"data: {json.dumps(event)}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    return response


@pytest.fixture
async def model() -> AsyncIterator[OpenAIChat]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield OpenAIChat(id="m", base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
    await runner.cleanup()


def delta(**fields: Any) -> dict[str, Any]:
    return {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": fields}]}


async def streamed(model: OpenAIChat) -> list[Any]:
    return [part async for part in model.astream([{"role": "user", "content": "hi"}], [])]


async def test_text_and_a_tool_call_come_as_they_are_streamed(model: OpenAIChat) -> None:
    EVENTS[:] = [
        delta(role="assistant", content="Hel"),
        delta(content="lo"),
        {"id": "c", "object": "chat.completion.chunk", "choices": []},  # (a usage chunk: no choices)
        delta(tool_calls=[{"index": 0, "id": "call_1", "function": {"name": "look_", "arguments": '{"ci'}}]),
        delta(tool_calls=[{"index": 0, "function": {"name": "up", "arguments": 'ty": "Osaka"}'}}]),
    ]
    parts = await streamed(model)
    assert parts[:2] == ["Hel", "lo"]
    end = parts[-1]
    assert isinstance(end, ModelResponse) and end.content == "Hello"
    assert [(c.id, c.name, json.loads(c.arguments)) for c in end.tool_calls] == [
        ("call_1", "look_up", {"city": "Osaka"})
    ]


async def test_an_error_event_mid_stream_is_raised(model: OpenAIChat) -> None:
    EVENTS[:] = [delta(content="Hal"), {"error": {"message": "the model fell over", "type": "server_error"}}]
    with pytest.raises(openai.APIError, match="the model fell over"):
        await streamed(model)


async def test_an_http_error_is_the_clients_status_error(model: OpenAIChat) -> None:
    EVENTS[:] = [503]
    with pytest.raises(openai.APIStatusError) as raised:
        await streamed(model)
    assert raised.value.status_code == 503
