"""Files over Slack's own HTTP, beside the Web API: downloading a shared file from its `url_private_download`
(with the workspace's bot token, as Slack requires: https://docs.slack.dev/messaging/working-with-files) and
sending a file's bytes to the upload URL `files.getUploadURLExternal` gave
(https://docs.slack.dev/reference/methods/files.getUploadURLExternal).

Both go through the gateway's connection pool (its aiohttp session; one of their own outside `pooled()`),
bounded in time, on the event loop without blocking it; a download reads at most `limit` bytes whatever the
file claims its size is.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from bot.slack.gateway import SlackCallFailed, SlackGateway
from bot.slack.workspaces import team

FILE_TIMEOUT = 30.0  # seconds a download or an upload of one file may take
CHUNK = 64 * 1024


class DownloadFailed(Exception):
    """A shared file could not be fetched; `reason` says why, in words for its person."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@contextlib.asynccontextmanager
async def _session(gateway: SlackGateway) -> AsyncIterator[aiohttp.ClientSession]:
    if gateway.client.session is not None:
        yield gateway.client.session
        return
    async with aiohttp.ClientSession() as session:
        yield session


async def download(gateway: SlackGateway, url: str, limit: int, expected_type: str | None = None) -> bytes:
    """The bytes at `url`, fetched with the current workspace's bot token. Raises `DownloadFailed`: no answer
    in time, an HTTP error, more than `limit` bytes, or a sign-in page instead of the file (what Slack sends
    a request without a valid token)."""
    client = await gateway.clients.client(team())
    if client is None or not client.token:
        raise DownloadFailed("the app is not installed in this workspace")
    headers = {"Authorization": f"Bearer {client.token}"}
    try:
        async with (
            _session(gateway) as session,
            asyncio.timeout(FILE_TIMEOUT),
            session.get(url, headers=headers) as response,
        ):
            if response.status != 200:
                raise DownloadFailed(f"Slack answered HTTP {response.status}")
            kind = response.content_type or ""
            if kind == "text/html" and not (expected_type or "").startswith("text/html"):
                raise DownloadFailed("Slack sent a sign-in page instead of the file")
            data = bytearray()
            async for chunk in response.content.iter_chunked(CHUNK):
                data += chunk
                if len(data) > limit:
                    raise DownloadFailed("it is larger than it said")
            return bytes(data)
    except TimeoutError as exc:
        raise DownloadFailed("Slack did not send it in time") from exc
    except aiohttp.ClientError as exc:
        raise DownloadFailed(f"a network error ({type(exc).__name__})") from exc


async def send_bytes(gateway: SlackGateway, url: str, data: bytes, filename: str) -> None:
    """POST `data` to an upload URL from files.getUploadURLExternal. Raises `SlackCallFailed` (transient: the
    upload is tried again from the start) if Slack does not answer 200 in time."""
    form: Any = aiohttp.FormData()
    form.add_field("filename", data, filename=filename)
    try:
        async with (
            _session(gateway) as session,
            asyncio.timeout(FILE_TIMEOUT),
            session.post(url, data=form) as response,
        ):
            if response.status != 200:
                failed = SlackCallFailed("file upload", f"http_{response.status}", status=response.status)
                failed.kind = "transient"  # the next attempt asks for a new upload URL: never refused for good
                raise failed
    except TimeoutError as exc:
        raise SlackCallFailed("file upload", "timeout") from exc
    except aiohttp.ClientError as exc:
        raise SlackCallFailed("file upload", "network_error") from exc
