"""The stand-in's files: people sharing them in a conversation, and the app uploading its own.

- `share_file(...)` / `share_in(...)`: a person posts a message with files (a `message` event of subtype
  `file_share` carrying `files`, and `app_mention` when it mentions the app outside a DM), each file object
  shaped as Slack's (https://docs.slack.dev/reference/objects/file-object): `id`, `name`, `title`,
  `mimetype`, `filetype`, `size`, `url_private`, `url_private_download`, ...
- `url_private_download` serves the bytes only with `Authorization: Bearer <bot token>`; without it Slack
  answers its sign-in page (HTML), and so does this. `broken_files` makes a download fail (HTTP 500).
- `files.getUploadURLExternal` (`filename` and `length` required: `invalid_arguments`; a length of 0:
  `missing_argument`), the upload URL it gives (POST the bytes, raw or as a multipart form: 200), and
  `files.completeUploadExternal` (`files`: a JSON list of `{id, title}`; a file never uploaded, or already
  completed, is `file_not_found`: "This method can only be called once"; `channel_id` unknown:
  `channel_not_found`; the file is shared as a message in `thread_ts`).
- `files.info`: the file object with its `shares` once completed; an unknown id is `file_not_found`.

A mixin of `DevSlack` (bot/devslack/slack.py).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.devslack.messages import Message

SIGN_IN_PAGE = "<!DOCTYPE html><html><body><h1>Sign in to Slack</h1></body></html>"


@dataclass
class StoredFile:
    """A file Slack holds: its object (as the API shows it) and its bytes (None until uploaded)."""

    info: dict[str, Any]
    data: bytes | None = None
    secret: str = field(default_factory=lambda: secrets.token_hex(8))
    completed: bool = False


class FilesApi:
    """Uses DevSlack's `messages`, `not_joined`, `dms`, `teams`, `team_id`, `caller_team`, `base_url`, `_ts`, `_epoch`,
    `changed`, `send` and `event_envelope`."""

    messages: dict[str, Message]
    not_joined: set[str]
    dms: dict[str, str]
    teams: dict[str, str]
    team_id: str
    caller_team: str
    base_url: str
    _ts: Any
    _epoch: int
    changed: Any
    send: Any
    event_envelope: Any

    def init_files(self) -> None:
        self.files: dict[str, StoredFile] = {}
        self.broken_files: set[str] = set()  # file ids whose download fails (HTTP 500)
        self.downloads: list[tuple[str, bool]] = []  # (file id, whether the bot token came with it), in order

    def add_file_routes(self, app: web.Application) -> None:
        app.router.add_get("/files-pri/{team_file}/download/{name}", self._download)
        app.router.add_post("/upload/v1/{file_id}/{secret}", self._upload)

    # ----- people's files ----------------------------------------------------------------------------
    def _new_file(self, name: str, mimetype: str, size: int, user: str) -> StoredFile:
        file_id = f"F{self._epoch + next(self._ts):X}"
        team = self.caller_team or self.team_id
        now = int(time.time())
        url = f"{self.base_url}files-pri/{team}-{file_id}/"
        info = {
            "id": file_id,
            "created": now,
            "timestamp": now,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": name.rsplit(".", 1)[-1].lower() if "." in name else "binary",
            "user": user,
            "user_team": team,
            "size": size,
            "mode": "hosted",
            "is_external": False,
            "is_public": False,
            "url_private": url + name,
            "url_private_download": url + "download/" + name,
        }
        stored = self.files[file_id] = StoredFile(info)
        return stored

    def person_shares(
        self,
        user: str,
        channel: str,
        text: str,
        files: list[tuple[str, str, bytes]],
        *,
        thread_ts: str | None = None,
        claimed_size: int | None = None,
    ) -> tuple[str, list[dict[str, Any]]]:
        """`user` posts `text` with `files` ((name, mimetype, bytes) each) in `channel`: the message is kept with
        its file objects, and the envelopes Slack sends are returned (not sent). `claimed_size`: the size the
        file objects state, if not the bytes' (a file that grew). Returns (ts, envelopes)."""
        if channel.startswith("D"):
            self.dms.setdefault(user, channel)  # their DM with the app (bot/devslack/people.py)
        objects = []
        for name, mimetype, data in files:
            stored = self._new_file(name, mimetype, len(data) if claimed_size is None else claimed_size, user)
            stored.data, stored.completed = data, True
            objects.append(stored.info)
        ts = f"{self._epoch + next(self._ts)}.000100"
        message = Message(channel, ts, text, [], thread_ts, team=self.team_id, user=user)
        message.files = objects
        self.messages[ts] = message
        self.changed()
        event: dict[str, Any] = {
            "type": "message",
            "subtype": "file_share",
            "channel": channel,
            "user": user,
            "text": text,
            "ts": ts,
            "files": objects,
            "upload": False,
            "display_as_bot": False,
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        im = channel.startswith("D")
        envelopes = [self.event_envelope({**event, "channel_type": "im" if im else "channel"})]
        if not im and "<@UBOT" in text:
            mention = {k: v for k, v in event.items() if k not in ("subtype", "upload", "display_as_bot")}
            envelopes.append(self.event_envelope({**mention, "type": "app_mention"}))
        return ts, envelopes

    async def share_in(
        self,
        user: str,
        channel: str,
        text: str,
        files: list[tuple[str, str, bytes]],
        *,
        thread_ts: str | None = None,
        claimed_size: int | None = None,
    ) -> str:
        """`person_shares`, its events sent to the bot (each must be acked with 200); returns the message's ts."""
        ts, envelopes = self.person_shares(user, channel, text, files, thread_ts=thread_ts, claimed_size=claimed_size)
        for envelope in envelopes:
            status, body, _took = await self.send(json.dumps(envelope).encode(), "application/json")
            assert status == 200, (status, body)
        return ts

    async def _download(self, request: web.Request) -> web.Response:
        file_id = request.match_info["team_file"].rsplit("-", 1)[-1]
        stored = self.files.get(file_id)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.downloads.append((file_id, token in self.teams))
        if token not in self.teams:  # what Slack answers a request without the token: its sign-in page
            return web.Response(text=SIGN_IN_PAGE, content_type="text/html")
        if stored is None or stored.data is None or not stored.completed:
            return web.Response(status=404, text="file not found")
        if file_id in self.broken_files:
            return web.Response(status=500, text="internal error")
        return web.Response(body=stored.data, content_type=stored.info["mimetype"] or "application/octet-stream")

    # ----- the app's uploads ---------------------------------------------------------------------------
    def _files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        filename = args.get("filename")
        try:
            length = int(args["length"])
        except (KeyError, TypeError, ValueError):
            return {"ok": False, "error": "invalid_arguments"}
        if not filename:
            return {"ok": False, "error": "invalid_arguments"}
        if length <= 0:
            return {"ok": False, "error": "missing_argument"}
        stored = self._new_file(str(filename), "", length, "UBOT")
        stored.info.pop("url_private_download")
        upload_url = f"{self.base_url}upload/v1/{stored.info['id']}/{stored.secret}"
        return {"ok": True, "upload_url": upload_url, "file_id": stored.info["id"]}

    async def _upload(self, request: web.Request) -> web.Response:
        stored = self.files.get(request.match_info["file_id"])
        if stored is None or stored.secret != request.match_info["secret"] or stored.completed:
            return web.Response(status=404, text="upload not found")
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            part = next(iter(form.values()), None)
            data = part.file.read() if isinstance(part, web.FileField) else str(part or "").encode()
        else:
            data = await request.read()
        stored.data = data
        stored.info["size"] = len(data)
        return web.Response(text=f"OK - {len(data)}")

    def _files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        named = args.get("files")
        if isinstance(named, str):
            try:
                named = json.loads(named)
            except ValueError:
                return {"ok": False, "error": "invalid_arguments"}
        if not isinstance(named, list) or not named or not all(isinstance(f, dict) and f.get("id") for f in named):
            return {"ok": False, "error": "invalid_arguments"}
        found = [self.files.get(str(f["id"])) for f in named]
        if any(s is None or s.data is None or s.completed for s in found):
            return {"ok": False, "error": "file_not_found"}  # never uploaded, or already completed
        channel = args.get("channel_id")
        thread_ts = args.get("thread_ts")
        if channel in self.not_joined:
            return {"ok": False, "error": "not_in_channel"}
        if channel and not any(m.channel == channel for m in self.messages.values()) and not channel.startswith("D"):
            return {"ok": False, "error": "channel_not_found"}
        objects = []
        for entry, stored in zip(named, found, strict=True):
            assert stored is not None
            stored.completed = True
            if entry.get("title"):
                stored.info["title"] = str(entry["title"])
            objects.append(stored.info)
        if channel:
            ts = f"{self._epoch + next(self._ts)}.000100"
            message = Message(channel, ts, args.get("initial_comment") or "", [], thread_ts, team=self.caller_team)
            message.files = objects
            self.messages[ts] = message
            kind = "private" if channel[:1] in ("D", "G") else "public"
            for info in objects:
                info.setdefault("shares", {}).setdefault(kind, {}).setdefault(channel, []).append(
                    {"ts": ts, **({"thread_ts": thread_ts} if thread_ts else {})}
                )
                info.setdefault("ims" if channel.startswith("D") else "channels", []).append(channel)
        return {"ok": True, "files": [{"id": info["id"], "title": info["title"]} for info in objects]}

    def _files_info(self, args: dict[str, Any]) -> dict[str, Any]:
        stored = self.files.get(str(args.get("file") or ""))
        if stored is None:
            return {"ok": False, "error": "file_not_found"}
        return {"ok": True, "file": stored.info}

    def uploaded(self, thread_ts: str) -> list[tuple[str, bytes]]:
        """The files the app shared in the thread of `thread_ts`: (title, bytes) each, oldest first."""
        return [
            (info["title"], self.files[info["id"]].data or b"")
            for m in sorted(self.messages.values(), key=lambda m: float(m.ts))
            if m.thread_ts == thread_ts and not m.user
            for info in m.files or []
        ]
