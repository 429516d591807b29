"""Files an agent made in a conversation turn (its tools' `ToolResult(images=..., files=...)`, on the turn's
step output), uploaded to the turn's thread once, owed through the outbox like the answer (a "files" row,
owed when the turn completes and delivered after its answer).

An upload is Slack's three steps, the ones `slack_sdk`'s `files_upload_v2` makes: `files.getUploadURLExternal`
(a file id and an upload URL), the bytes POSTed to that URL, then `files.completeUploadExternal` sharing the
file in the thread (`channel_id`, `thread_ts`). They are made one by one here, because the file id is
recorded in the row (`detail["started"]`) before the bytes go: an attempt whose outcome is unknown (a lost
answer to the completion, a process that died) is followed by `files.info` on that id, and a file already
shared in the channel is not uploaded again (`detail["uploaded"]`). One that is not was never completed, and
Slack drops it: the upload starts over with a new id.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.slack.files import send_bytes
from bot.slack.gateway import SlackCallFailed, SlackGateway
from bot.store import BotStore, OwedMessage
from kern.media import Audio, File, Image, Video

log = logging.getLogger("kern_bot")

KINDS: tuple[tuple[str, type[Any], str], ...] = (
    ("images", Image, "image"),
    ("videos", Video, "video"),
    ("audio", Audio, "audio"),
    ("files", File, "file"),
)


def made_media(outputs: list[Any]) -> list[Any]:
    """The media the run's steps made (nested steps' too), in a fixed order: images, videos, audio, files."""
    found: list[Any] = []
    for key, cls, _name in KINDS:
        for output in _flat(outputs):
            found.extend(item if isinstance(item, cls) else cls.from_dict(item) for item in getattr(output, key) or [])
    return found


def _flat(outputs: list[Any]) -> list[Any]:
    return [o for output in outputs for o in (output, *_flat(output.steps or []))]


def file_name(item: Any, index: int) -> str:
    """The name a made file is uploaded under: its own, else one from its kind, position and format."""
    name = getattr(item, "filename", None) or getattr(item, "name", None)
    if name:
        return str(name)
    if item.filepath or item.url:
        return str(item.describe())
    extension = item.format or item.guess_mime_type().split("/")[-1]
    return f"{item.KIND}-{index + 1}.{extension}"


def shared_in(info: dict[str, Any], channel: str) -> bool:
    """Whether files.info's `file` object says it is shared in `channel`."""
    shares = info.get("shares") or {}
    if any(channel in (shares.get(kind) or {}) for kind in ("public", "private")):
        return True
    return any(channel in (info.get(key) or []) for key in ("channels", "groups", "ims"))


class Uploads:
    """Delivers a "files" row: every file its run made, each uploaded once."""

    def __init__(self, gateway: SlackGateway, store: BotStore) -> None:
        self.gateway = gateway
        self.store = store

    async def deliver(self, message: OwedMessage, channel: str, thread_ts: str, outputs: list[Any]) -> None:
        """Upload what is not uploaded yet, recording progress in the row as it goes. Raises
        `SlackCallFailed`: the row is tried again, and goes on where it was."""
        detail: dict[str, Any] = dict(message.detail or {})
        uploaded: dict[str, str] = dict(detail.get("uploaded") or {})
        started: dict[str, str] = dict(detail.get("started") or {})
        for index, item in enumerate(made_media(outputs)):
            key = str(index)
            if key in uploaded:
                continue
            if key in started and await self._shared(started[key], channel):
                uploaded[key] = started.pop(key)
                await self._record(message, detail, uploaded, started)
                continue
            try:
                data = await item.aget_content_bytes()  # bytes as made, or read from its path or URL
            except Exception as exc:  # a path or URL that does not give them: nothing Slack can be sent
                log.warning("run %s: made %s %s cannot be read: %s", message.run_id, item.KIND, item.describe(), exc)
                data = None
            if not data:
                uploaded[key] = ""  # nothing to upload: never tried again
                continue
            name = file_name(item, index)
            got = await self.gateway.send("files_getUploadURLExternal", filename=name, length=len(data))
            started[key] = str(got["file_id"])
            await self._record(message, detail, uploaded, started)  # before the bytes go: a retry looks it up
            await send_bytes(self.gateway, str(got["upload_url"]), data, name)
            title = getattr(item, "alt_text", None) or name
            await self.gateway.send(
                "files_completeUploadExternal",
                files=[{"id": started[key], "title": title}],
                channel_id=channel,
                thread_ts=thread_ts,
            )
            uploaded[key] = started.pop(key)
            await self._record(message, detail, uploaded, started)

    async def _shared(self, file_id: str, channel: str) -> bool:
        """Whether an upload begun before was completed in `channel` (found by files.info)."""
        try:
            found = await self.gateway.send("files_info", file=file_id)
        except SlackCallFailed as exc:
            if exc.error == "file_not_found":  # never completed: Slack dropped it
                return False
            raise
        return shared_in(found.get("file") or {}, channel)

    async def _record(
        self, message: OwedMessage, detail: dict[str, Any], uploaded: dict[str, str], started: dict[str, str]
    ) -> None:
        detail.update(uploaded=uploaded, started=started)
        message.detail = dict(detail)
        await self.store.note_detail(message.id, message.detail)
