"""The web page of `kern-bot dev`: Slack in the browser (a channel, the DM with the app, the app's Home
tab), driven through DevSlack.

Routes (on DevSlack's own server): `/` the page, `/ui/blocks.js` and `/ui/page.js` its scripts, `/ui/state`
what a user sees, `/ui/events` server-sent events when anything changes, `/ui/emoji` the shortcodes it
renders, and `/ui/command`, `/ui/shortcut`, `/ui/click`, `/ui/submit`, `/ui/close`, `/ui/home` (opens the
Home tab), `/ui/home_click`, `/ui/assistant` (opens an assistant thread, as from Slack's assistant pane, while
looking at the channel) and `/ui/assistant_say` (writes in one) for the person. An assistant thread shows its
title, status and suggested prompts in the DM.

What Slack's own client does is done here too: a modal is not submitted while an input is left empty or
out of its element's bounds (`validate.submission_errors`, shown under the input); text typed in the
channel that is not a slash command is posted as the person's message and sent to the app as the
`message` event (and `app_mention` when it mentions the app); an unknown slash command is answered by
Slackbot. At start the app joins the channel (`member_joined_channel`), so its intro is the first message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.blocks.kit import RUN_SHORTCUT
from bot.devslack import persist
from bot.devslack.emoji import EMOJI
from bot.devslack.messages import Ephemeral
from bot.devslack.people import dm_id
from bot.devslack.slack import DevSlack, Message
from bot.devslack.validate import submission_errors

PAGE = Path(__file__).with_name("page.html")
SCRIPTS = {"blocks": PAGE.with_name("blocks.js"), "page": PAGE.with_name("page.js")}  # the page's two scripts
USERS = ["U1", "U2", "UBOSS"]
BOT_USER, BOT_NAME = "UBOT", "kern"  # the app's user (as auth.test names it) and its display name
CHANNELS = [{"id": "C1", "name": "general"}]  # the page's channel; the shortcut's channel menu offers it


@dataclass
class DevSlackWeb(DevSlack):
    """DevSlack with the browser page; with `state_file`, its channel survives a restart (see `persist`)."""

    state_file: Path | None = None
    notice: str = ""  # shown under the channel name (e.g. that the agent example's model is scripted)

    async def __aenter__(self) -> DevSlackWeb:
        self._saver = None
        for channel in CHANNELS:  # the page's people are in its channel, as in a workspace's #general
            members = self.members.setdefault(channel["id"], [])
            members.extend(user for user in [*USERS, BOT_USER] if user not in members)
        if self.state_file is not None:
            self.messages.update(persist.load(self.state_file))
            self._saver = persist.Saver(self.state_file, lambda: persist.snapshot(self.messages))
        await super().__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await super().__aexit__(*exc)
        if self._saver is not None:
            await self._saver.close()

    async def bot_joins(self) -> None:
        """The app is added to the page's channel, as when it is installed and invited: Slack sends it
        `member_joined_channel`, and the bot posts its intro through its own path. Only into an empty
        channel (a channel kept from the last start has it already)."""
        channel = CHANNELS[0]["id"]
        if not any(m.channel == channel for m in self.messages.values()):
            await self.join(channel, BOT_USER)

    def changed(self) -> None:
        super().changed()
        saver = getattr(self, "_saver", None)
        if saver is not None:
            saver.soon()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self._page)
        app.router.add_get("/ui/state", self._state)
        app.router.add_get("/ui/events", self._events)
        app.router.add_get("/ui/emoji", self._emoji)
        app.router.add_get("/ui/{name}.js", self._script)
        app.router.add_post("/ui/command", self._command)
        app.router.add_post("/ui/shortcut", self._shortcut)
        app.router.add_post("/ui/click", self._click)
        app.router.add_post("/ui/submit", self._submit)
        app.router.add_post("/ui/close", self._close)
        app.router.add_post("/ui/home", self._home)
        app.router.add_post("/ui/home_click", self._home_click)
        app.router.add_post("/ui/assistant", self._assistant)
        app.router.add_post("/ui/assistant_say", self._assistant_say)

    async def _page(self, _request: web.Request) -> web.Response:
        return web.Response(text=PAGE.read_text(), content_type="text/html")

    async def _script(self, request: web.Request) -> web.Response:
        script = SCRIPTS.get(request.match_info["name"])
        if script is None:
            raise web.HTTPNotFound()
        return web.Response(text=script.read_text(), content_type="application/javascript")

    def state_for(self, user: str) -> dict[str, Any]:
        """Everything `user` sees: the channel with its threads (`messages`), their DM with the app (`dm`,
        in channel `dm_channel`), their Home tab as last published (`home`), their ephemeral messages (each
        with its channel), their modal."""
        channel, dm = CHANNELS[0]["id"], self.dms.get(user) or dm_id(user)
        views = [v for v in self.views.values() if v.get("user") == user and not v.get("closed")]
        return {
            "users": USERS,
            "channels": CHANNELS,
            "notice": self.notice,
            "messages": self._conversation(channel),
            "dm_channel": dm,
            "dm": self._conversation(dm),
            "home": self.homes.get(user),
            "ephemeral": [{**e, "at": getattr(e, "at", 0)} for e in self.ephemeral if e.get("user") == user][-5:],
            "view": views[-1] if views else None,
            "rejected": self.rejected[-5:],
            "version": self.version,
        }

    def _conversation(self, channel: str) -> list[dict[str, Any]]:
        """The top-level messages of `channel`, oldest first, each with its thread."""

        def shown(m: Message) -> dict[str, Any]:
            return {
                "ts": m.ts,
                "at": m.at,
                "text": m.text,
                "blocks": m.blocks,
                "edited": m.edits > 0,
                "author": m.user,  # "" for the app's own messages
                "files": [str(f.get("title") or f.get("name") or "") for f in m.files or []],
                "streaming": m.streaming == "in_progress",  # a streamed answer still growing
                "tasks": list(m.tasks.values()),  # its task cards (task_update chunks)
            }

        def pane(ts: str) -> dict[str, Any] | None:
            thread = self.assistant_threads.get(ts)
            if thread is None:
                return None
            return {"title": thread.title, "status": self.assistant_status(ts), "prompts": thread.prompts}

        tops = [m for m in self.messages.values() if m.channel == channel and m.thread_ts is None]
        return [{**shown(m), "replies": [shown(r) for r in self.thread(m.ts)], "assistant": pane(m.ts)} for m in tops]

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state_for(request.query.get("user", "U1")))

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        queue = self.watch()
        try:
            await response.write(f"data: {self.version}\n\n".encode())
            while (version := await queue.get()) >= 0:  # DevSlack sends -1 when it stops
                await response.write(f"data: {version}\n\n".encode())
        except (ConnectionResetError, RuntimeError):
            pass
        finally:
            self.unwatch(queue)
        return response

    async def _command(self, request: web.Request) -> web.Response:
        data = await request.json()
        text = str(data.get("text", "")).strip()
        user = data.get("user", "U1")
        # typed in their DM with the app (which exists once they are in it), or in the channel
        channel = self.dms.setdefault(user, dm_id(user)) if data.get("where") == "dm" else CHANNELS[0]["id"]
        name = text.split(maxsplit=1)[0] if text else ""
        if name == "/kern":
            status, _body, _took = await self.command(text.removeprefix("/kern").strip(), user=user, channel=channel)
            return web.json_response({"status": status})
        if name.startswith("/"):  # Slack's client answers this itself; nothing is sent to any app
            said = (
                f"`{name}` is not a valid command. In Slack, all messages that start with the "
                '"/" character are interpreted as commands.'
            )
            self.ephemeral.append(Ephemeral({"channel": channel, "user": user, "text": said, "author": "Slackbot"}))
            self.changed()
            return web.json_response({"status": 0})
        status = await self.say(user, channel, text)
        return web.json_response({"status": status})

    async def say(self, user: str, channel: str, text: str) -> int:
        """`user` posts `text` in `channel` (a mention typed as @name becomes Slack's <@id>); the app gets the
        `message` event (https://docs.slack.dev/reference/events/message: message.channels, message.im) and,
        when the text mentions it, `app_mention` too (https://docs.slack.dev/reference/events/app_mention),
        as Slack sends both to an app subscribed to both. Returns the status of the bot's answer."""
        names = {BOT_NAME: BOT_USER, **{u: u for u in USERS}}
        text = re.sub(r"(?<![<\w])@(\w+)", lambda m: f"<@{names[m[1]]}>" if m[1] in names else m[0], text)
        ts = f"{self._epoch + next(self._ts)}.000100"  # as the app's messages are stamped
        self.messages[ts] = Message(channel, ts, text, [], team=self.team_id, user=user)
        self.changed()
        event = {"type": "message", "channel": channel, "user": user, "text": text, "ts": ts}
        status, _body, _took = await self.event(
            {**event, "channel_type": "im" if channel.startswith("D") else "channel"}
        )
        if f"<@{BOT_USER}>" in text:
            status, _body, _took = await self.event({**event, "type": "app_mention"})
        return status

    async def _shortcut(self, request: web.Request) -> web.Response:
        data = await request.json()
        status, _body, _took = await self.shortcut(RUN_SHORTCUT, user=data.get("user", "U1"))
        return web.json_response({"status": status})

    async def _emoji(self, _request: web.Request) -> web.Response:
        return web.json_response(EMOJI)

    async def _click(self, request: web.Request) -> web.Response:
        data = await request.json()
        message = self.messages.get(data["ts"])
        if message is None:
            return web.json_response({"error": "message_not_found"}, status=404)
        for block in message.blocks:
            for element in _interactive(block):
                if element.get("action_id") == data["action_id"]:
                    payload = self.click_payload(
                        data["action_id"],
                        user=data.get("user", "U1"),
                        state=data.get("state"),
                        stale=(message, element, block.get("block_id", "")),
                    )
                    if isinstance(data.get("chosen"), dict):  # a select or overflow: what was chosen, as Slack sends it
                        action = payload["actions"][0]
                        action.pop("value", None)
                        action.update(data["chosen"], type=element["type"])
                    status, body, _ = await self._interaction(payload)
                    return web.json_response({"status": status, "body": body})
        return web.json_response({"error": "action_not_found"}, status=404)

    async def _home(self, request: web.Request) -> web.Response:
        """The person opens the app's Home tab: Slack sends the app `app_home_opened`, every time."""
        status, _body, _took = await self.open_home((await request.json()).get("user", "U1"))
        return web.json_response({"status": status})

    async def _home_click(self, request: web.Request) -> web.Response:
        data = await request.json()
        chosen = data.get("chosen")
        try:
            value = None if isinstance(chosen, dict) else data.get("value")
            payload = self.home_click_payload(
                data.get("user", "U1"), data["action_id"], value=value, state=data.get("state")
            )
        except (KeyError, LookupError):  # no Home published for them, or no such element on it
            return web.json_response({"error": "action_not_found"}, status=404)
        if isinstance(chosen, dict):  # a select, an overflow menu or a date: what was chosen, as Slack sends it
            payload["actions"][0].pop("value", None)
            payload["actions"][0].update(chosen)
        status, body, _ = await self._interaction(payload)
        return web.json_response({"status": status, "body": body})

    async def _submit(self, request: web.Request) -> web.Response:
        data = await request.json()
        view = self.views.get(data["view_id"])
        if view is None or view.get("closed"):
            return web.json_response({"error": "not_found"}, status=404)
        refused = submission_errors(view, data.get("values", {}))
        if refused:  # as Slack's client: shown under the inputs, and the app hears nothing
            return web.json_response({"status": 0, "errors": refused})
        status, body, _ = await self.submit(data["view_id"], data.get("values", {}), user=data.get("user", "U1"))
        answer = json.loads(body) if status == 200 and body else {}
        return web.json_response({"status": status, "errors": answer.get("errors", {})})

    async def _assistant(self, request: web.Request) -> web.Response:
        ts = await self.open_assistant((await request.json()).get("user", "U1"), viewing=CHANNELS[0]["id"])
        return web.json_response({"ts": ts})

    async def _assistant_say(self, request: web.Request) -> web.Response:
        data = await request.json()
        thread = self.assistant_threads.get(str(data.get("ts")))
        if thread is None or thread.user != data.get("user", "U1") or not str(data.get("text", "")).strip():
            return web.json_response({"error": "not_found"}, status=404)
        await self.say_in_assistant(thread.ts, str(data["text"]).strip())
        return web.json_response({"ok": True})

    async def _close(self, request: web.Request) -> web.Response:
        self.close_view((await request.json())["view_id"])
        return web.json_response({"ok": True})


def _interactive(block: dict[str, Any]) -> list[dict[str, Any]]:
    """The elements of `block` a person can click: an actions block's, a section's accessory."""
    if block.get("type") == "actions":
        return list(block.get("elements", []))
    return [block["accessory"]] if block.get("type") == "section" and "accessory" in block else []
