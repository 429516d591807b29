"""Files a person shares with a message to the bot (`files` on a `message` event of subtype `file_share`, or on
an `app_mention`: https://docs.slack.dev/reference/events/message/file_share) as `kern.media` objects for the
conversation's agent.

Each file is fetched from its `url_private_download` with the bot token (bot/slack/files.py), at most
`max_file_size` bytes (`BotAgent(max_file_size=...)`), one after another. What kern's models can read is
taken: images (PNG, JPEG, GIF, WebP) as `Image`, documents and text (`File.valid_mime_types()`) as `File`,
WAV and MP3 as `Audio`. Anything else is skipped, as is a file too large or one that could not be fetched;
`skipped_text` says which and why, for the thread.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from bot import blocks as ui
from bot.slack.files import DownloadFailed, download
from bot.slack.gateway import SlackGateway
from kern.media import Audio, File, Image

log = logging.getLogger("kern_bot")

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
AUDIO_TYPES = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/mpeg": "mp3", "audio/mp3": "mp3"}


@dataclass
class SharedFiles:
    """What came of the files of one message: the media for the agent (`run(**media)`) and what was skipped."""

    media: dict[str, list[Any]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file name, why)

    def add(self, key: str, item: Any) -> None:
        self.media.setdefault(key, []).append(item)


def human_size(size: int) -> str:
    """A size in bytes as people read it: 512 bytes, 3.9 KB, 12.5 MB."""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def _kind(mimetype: str) -> str | None:
    """Which `run()` argument a file of this type goes to (None: not one kern's models read)."""
    if mimetype in IMAGE_TYPES:
        return "images"
    if mimetype in AUDIO_TYPES:
        return "audio"
    if mimetype in File.valid_mime_types():
        return "files"
    return None


async def take_files(gateway: SlackGateway, files: list[dict[str, Any]], max_file_size: int) -> SharedFiles:
    """Fetch the message's files that can be read, within `max_file_size` each."""
    taken = SharedFiles()
    for info in files:
        name = str(info.get("name") or info.get("title") or info.get("id") or "a file")
        mimetype = str(info.get("mimetype") or "").split(";")[0].strip().lower()
        size = int(info.get("size") or 0)
        url = info.get("url_private_download") or info.get("url_private")
        kind = _kind(mimetype)
        if kind is None:
            taken.skipped.append((name, f"its type ({mimetype or 'unknown'}) is not one I can read"))
            continue
        if size > max_file_size:
            taken.skipped.append((name, f"it is {human_size(size)}, over the {human_size(max_file_size)} limit"))
            continue
        if not url:  # a file hosted elsewhere (Google Drive, ...), or one deleted since
            taken.skipped.append((name, "Slack gives no way to download it"))
            continue
        try:
            data = await download(gateway, str(url), max_file_size, mimetype)
        except DownloadFailed as exc:
            log.warning("shared file %s (%s) not downloaded: %s", info.get("id"), name, exc.reason)
            taken.skipped.append((name, f"I could not download it: {exc.reason}"))
            continue
        if kind == "images":
            taken.add(kind, Image(content=data, id=info.get("id"), mime_type=mimetype, format=mimetype.split("/")[1]))
        elif kind == "audio":
            taken.add(kind, Audio(content=data, id=info.get("id"), mime_type=mimetype, format=AUDIO_TYPES[mimetype]))
        else:
            taken.add(kind, File(content=data, id=info.get("id"), mime_type=mimetype, filename=name, size=len(data)))
    return taken


def skipped_text(skipped: list[tuple[str, str]]) -> str:
    """The thread's line about files left out (names escaped: people chose them)."""
    lines = [f"• `{ui.escape(name)}`: {ui.escape(why)}" for name, why in skipped]
    head = "I left out a file you shared:" if len(lines) == 1 else f"I left out {len(lines)} files you shared:"
    return ":paperclip: " + head + "\n" + "\n".join(lines)
