"""`kern.models.message.Message`: one message of a conversation, as a typed object.

kern stores a run's messages as plain dicts (see `kern.models.base`), the shape its models read and
its store writes. `Message` is the documented typed view of the same data: build one with
`Message(role="user", content="...")`, turn it into the stored shape with `to_dict()`, and read a
stored one back with `Message.from_dict(run_output.messages[i])`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kern.ids import new_id
from kern.media import AudioList, FileList, ImageList, VideoList

Role = Literal["system", "developer", "user", "assistant", "tool"]


class Message(BaseModel):
    """A system, user, assistant or tool message."""

    model_config = ConfigDict(extra="allow")

    role: Role
    content: Any = None
    id: str = Field(default_factory=new_id)
    name: str | None = None
    # assistant messages: the calls the model asked for, as {"id", "name", "arguments"} dicts
    tool_calls: list[dict[str, Any]] | None = None
    # tool messages: which call this answers, and what was called
    tool_call_id: str | None = None
    tool_name: str | None = None
    tool_args: Any = None
    tool_call_error: bool | None = None
    # user messages: the media given with them (`kern.media`; stored in their `to_dict()` form)
    images: ImageList = None
    audio: AudioList = None
    videos: VideoList = None
    files: FileList = None

    def to_dict(self) -> dict[str, Any]:
        """The message as kern stores it: unset fields left out."""
        return self.model_dump(exclude_none=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        """A stored message (kern's dict shape; a tool message's `name` is the tool's name)."""
        data = dict(data)
        if data.get("role") == "tool" and "tool_name" not in data and data.get("name"):
            data["tool_name"] = data["name"]
        return cls(**data)


__all__ = ["Message"]
