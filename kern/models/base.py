"""The model interface. Another provider is one file: subclass `Model`, implement `aresponse` (and
`astream` if it can stream)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kern.tools.tool import Tool

# Messages are plain dicts, stored as they are with a run:
#   {"role": "system" | "user", "content": str}
#   {"role": "assistant", "content": str | None, "tool_calls": [{"id", "name", "arguments"}]}
#   {"role": "tool", "tool_call_id": str, "name": str, "content": str}
Message = dict[str, Any]


@dataclass
class ToolCall:
    """One function call the model asked for; `arguments` is the JSON text the model wrote."""

    id: str
    name: str
    arguments: str = "{}"


@dataclass
class ModelResponse:
    """One model turn: text, tool calls, or both."""

    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)

    def as_message(self) -> Message:
        message: Message = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.tool_calls]
        return message


class Model(ABC):
    """A chat model that can call tools."""

    id: str

    @abstractmethod
    async def aresponse(self, messages: Sequence[Message], tools: Sequence[Tool]) -> ModelResponse:
        """One turn: the model's answer to `messages`, possibly asking for tool calls."""

    async def astream(self, messages: Sequence[Message], tools: Sequence[Tool]) -> AsyncIterator[str | ModelResponse]:
        """Text pieces as they arrive, then the whole `ModelResponse` last. Default: no streaming."""
        response = await self.aresponse(messages, tools)
        if response.content:
            yield response.content
        yield response

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r})"
