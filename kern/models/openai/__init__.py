"""OpenAI models on the official `openai` client: any OpenAI-compatible endpoint works (`base_url`).

`api_key` and `base_url` default to the client's own `OPENAI_API_KEY` and `OPENAI_BASE_URL`. The client
is created on first use (one per event loop), so building an agent needs no key.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from kern.models.base import Message, Model, ModelResponse, ToolCall
from kern.models.openai.parts import chat_content, has_media, responses_content

if TYPE_CHECKING:
    from openai import AsyncOpenAI

    from kern.tools.tool import Tool


class _OpenAIModel(Model):
    def __init__(
        self,
        id: str = "gpt-4o-mini",
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        temperature: float | None = None,
        max_retries: int = 2,
        timeout: float | None = None,
        request_params: dict[str, Any] | None = None,
    ) -> None:
        self.id = id
        self.api_key = api_key
        self.base_url = base_url
        self.temperature = temperature
        self.max_retries = max_retries
        self.timeout = timeout
        self.request_params = dict(request_params or {})
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncOpenAI] = weakref.WeakKeyDictionary()

    def client(self) -> AsyncOpenAI:
        """This event loop's client (httpx connection pools belong to one loop)."""
        from openai import AsyncOpenAI

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            kwargs: dict[str, Any] = {
                "api_key": self.api_key,
                "base_url": self.base_url,
                "max_retries": self.max_retries,
            }
            if self.timeout is not None:
                kwargs["timeout"] = self.timeout
            client = self._clients[loop] = AsyncOpenAI(**kwargs)
        return client

    def _params(self) -> dict[str, Any]:
        params = dict(self.request_params)
        if self.temperature is not None:
            params["temperature"] = self.temperature
        return params


class OpenAIChat(_OpenAIModel):
    """The Chat Completions API (`client.chat.completions`)."""

    @staticmethod
    def _messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for m in messages:
            if m["role"] == "assistant" and m.get("tool_calls"):
                out.append(
                    {
                        "role": "assistant",
                        "content": m.get("content"),
                        "tool_calls": [
                            {
                                "id": c["id"],
                                "type": "function",
                                "function": {"name": c["name"], "arguments": c["arguments"]},
                            }
                            for c in m["tool_calls"]
                        ],
                    }
                )
            elif m["role"] == "tool":
                out.append({"role": "tool", "tool_call_id": m["tool_call_id"], "content": m["content"]})
            elif m["role"] == "user":
                out.append({"role": "user", "content": chat_content(m)})  # with its images and files, as parts
            else:
                out.append({"role": m["role"], "content": m.get("content") or ""})
        return out

    def _request(self, messages: Sequence[Message], tools: Sequence[Tool]) -> dict[str, Any]:
        request: dict[str, Any] = {"model": self.id, "messages": self._messages(messages), **self._params()}
        if tools:
            request["tools"] = [t.to_openai_chat() for t in tools]
        return request

    async def aresponse(self, messages: Sequence[Message], tools: Sequence[Tool]) -> ModelResponse:
        completion = await self.client().chat.completions.create(**self._request(messages, tools))
        message = completion.choices[0].message
        calls = [
            ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments or "{}")
            for c in (message.tool_calls or [])
            if getattr(c, "function", None) is not None
        ]
        return ModelResponse(content=message.content, tool_calls=calls)

    async def astream(self, messages: Sequence[Message], tools: Sequence[Tool]) -> AsyncIterator[str | ModelResponse]:
        # The stream's events read as plain JSON: the client's typed chunks cost about 0.4 ms of the event loop
        # each (pydantic models built per chunk), which fifty answers streaming at once turn into stalls.
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        chat = self.client().chat.completions.with_streaming_response
        async with chat.create(**self._request(messages, tools), stream=True) as response:
            async for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                if chunk.get("error"):
                    from openai import APIError

                    error = chunk["error"]
                    message = error.get("message") if isinstance(error, dict) else str(error)
                    raise APIError(message or "the stream failed", response.http_request, body=error)
                choices = chunk.get("choices") or []
                if not choices:
                    continue
                delta = choices[0].get("delta") or {}
                if delta.get("content"):
                    text.append(delta["content"])
                    yield delta["content"]
                for part in delta.get("tool_calls") or []:
                    call = calls.setdefault(part.get("index", 0), {"id": "", "name": "", "arguments": ""})
                    call["id"] = part.get("id") or call["id"]
                    function = part.get("function") or {}
                    call["name"] += function.get("name") or ""
                    call["arguments"] += function.get("arguments") or ""
        yield ModelResponse(
            content="".join(text) or None,
            tool_calls=[ToolCall(c["id"], c["name"], c["arguments"] or "{}") for _, c in sorted(calls.items())],
        )


class OpenAIResponses(_OpenAIModel):
    """The Responses API (`client.responses`)."""

    @staticmethod
    def _input(messages: Sequence[Message]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for m in messages:
            role = m["role"]
            if role == "tool":
                items.append({"type": "function_call_output", "call_id": m["tool_call_id"], "output": m["content"]})
                continue
            if role == "user" and (m.get("content") or has_media(m)):
                items.append({"role": "user", "content": responses_content(m)})
            elif m.get("content"):
                items.append({"role": "developer" if role == "system" else role, "content": m["content"]})
            for c in m.get("tool_calls") or []:
                items.append(
                    {"type": "function_call", "call_id": c["id"], "name": c["name"], "arguments": c["arguments"]}
                )
        return items

    def _request(self, messages: Sequence[Message], tools: Sequence[Tool]) -> dict[str, Any]:
        request: dict[str, Any] = {"model": self.id, "input": self._input(messages), **self._params()}
        if tools:
            request["tools"] = [t.to_openai_responses() for t in tools]
        return request

    @staticmethod
    def _parse(response: Any) -> ModelResponse:
        texts: list[str] = []
        calls: list[ToolCall] = []
        for item in response.output or []:
            if item.type == "function_call":
                calls.append(ToolCall(id=item.call_id, name=item.name, arguments=item.arguments or "{}"))
            elif item.type == "message":
                texts.extend(part.text for part in item.content or [] if getattr(part, "type", "") == "output_text")
        return ModelResponse(content="".join(texts) or None, tool_calls=calls)

    async def aresponse(self, messages: Sequence[Message], tools: Sequence[Tool]) -> ModelResponse:
        return self._parse(await self.client().responses.create(**self._request(messages, tools)))

    async def astream(self, messages: Sequence[Message], tools: Sequence[Tool]) -> AsyncIterator[str | ModelResponse]:
        stream = await self.client().responses.create(**self._request(messages, tools), stream=True)
        final = None
        async for event in stream:
            if event.type == "response.output_text.delta":
                yield event.delta
            elif event.type == "response.completed":
                final = event.response
        if final is None:
            raise RuntimeError(f"{self!r}: the stream ended without a response.completed event")
        yield self._parse(final)
