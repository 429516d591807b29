"""`ToolResult`: what a tool returns when it makes media as well as text (the reference API's
`agno.tools.function.ToolResult`). The model reads `content`; the images, videos, audio and files join the
run's output (`RunOutput.images`, `.videos`, `.audio`, `.files`), where a caller (kern-bot: the thread)
picks them up."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from kern.media import Audio, File, Image, Video


class ToolResult(BaseModel):
    """A tool's text for the model (`content`) and the media it made."""

    content: str
    metadata: dict[str, Any] | None = None
    images: list[Image] | None = None
    videos: list[Video] | None = None
    audios: list[Audio] | None = None
    files: list[File] | None = None

    def add_media_to(self, run: Any) -> str:
        """Append this result's media to `run`'s output lists (a `RunOutput`); returns `content`."""
        for mine, theirs in (("images", "images"), ("videos", "videos"), ("audios", "audio"), ("files", "files")):
            made = getattr(self, mine)
            if made:
                setattr(run, theirs, [*(getattr(run, theirs) or []), *made])
        return self.content


__all__ = ["ToolResult"]
