"""The stand-in's person-facing Web API: DMs (`conversations.open`), the App Home (`views.publish` and
the `app_home_opened` event), message links (`chat.getPermalink`) and who people are (`users.info`),
validated as Slack validates.

A mixin of `DevSlack` (bot/devslack/slack.py), which dispatches `/api/<method>` to `_<method>`.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from bot.devslack.validate import validate_blocks

USER_ID = re.compile(r"^[UW][A-Z0-9]{1,}$")


def dm_id(user: str) -> str:
    """The id of the bot's DM channel with `user` (the same every time, as Slack's is)."""
    return f"D{user[1:]}"


class PeopleApi:
    """DMs, Home tabs and permalinks. Uses DevSlack's fields: `users` (known user ids; empty: any
    well-formed id exists), `dms` (user -> DM channel), `homes` (user -> published Home view),
    `home_tab_enabled`, `messages`."""

    users: set[str]
    profiles: dict[str, dict[str, Any]]
    dms: dict[str, str]
    homes: dict[str, dict[str, Any]]
    home_tab_enabled: bool
    messages: dict[str, Any]
    base_url: str
    team_id: str

    def _user_exists(self, user: str) -> bool:
        return bool(USER_ID.match(user or "")) and (not self.users or user in self.users)

    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        """https://docs.slack.dev/reference/methods/conversations.open: `users` is a comma-separated list
        (one user: a 1:1 DM, the same channel every time; at most 8), or `channel` to resume one.
        Errors: users_list_not_supplied, user_not_found, too_many_users, channel_not_found."""
        if args.get("channel"):
            if args["channel"] not in self.dms.values():
                return {"ok": False, "error": "channel_not_found"}
            return {"ok": True, "channel": {"id": args["channel"]}}
        users = [u for u in str(args.get("users") or "").split(",") if u]
        if not users:
            return {"ok": False, "error": "users_list_not_supplied"}
        if len(users) > 8:
            return {"ok": False, "error": "too_many_users"}
        if not all(self._user_exists(u) for u in users):
            return {"ok": False, "error": "user_not_found"}
        if len(users) > 1:
            return {"ok": False, "error": "method_not_supported_for_channel_type"}  # group DMs: not used
        already = users[0] in self.dms
        channel = self.dms.setdefault(users[0], dm_id(users[0]))
        return {"ok": True, "channel": {"id": channel}, "already_open": already}

    def dm_channel_ok(self, channel: str) -> bool:
        """A DM channel (D…) exists only once conversations.open made it (Slack: channel_not_found)."""
        return not channel.startswith("D") or channel in self.dms.values()

    def dm_of(self, user: str) -> list[Any]:
        """The messages in `user`'s DM with the bot, oldest first."""
        channel = self.dms.get(user)
        return [m for m in self.messages.values() if channel and m.channel == channel]

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        """https://docs.slack.dev/reference/methods/views.publish: a `home` view for `user_id` (no scope
        needed). Errors: invalid_arguments ("invalid `user_id`"), not_enabled (Home tab off in the app),
        view_too_large (over 250 kB), invalid_blocks (a Home tab holds at most 100 blocks, per
        https://docs.slack.dev/reference/block-kit/blocks), hash_conflict."""
        user, view = args.get("user_id") or "", args.get("view")
        if not self._user_exists(user):
            return {"ok": False, "error": "invalid_arguments", "response_metadata": {"messages": ["invalid `user_id`"]}}
        if not isinstance(view, dict) or view.get("type") != "home":
            return {"ok": False, "error": "invalid_arguments", "response_metadata": {"messages": ["invalid `view`"]}}
        if not self.home_tab_enabled:
            return {"ok": False, "error": "not_enabled"}
        current = self.homes.get(user)
        if args.get("hash") and current is not None and args["hash"] != current["hash"]:
            return {"ok": False, "error": "hash_conflict"}
        if len(json.dumps(view)) > 250_000:
            return {"ok": False, "error": "view_too_large"}
        errors = validate_blocks(view.get("blocks") or [], modal=True)
        if len(view.get("private_metadata", "")) > 3000:
            errors.append("private_metadata must be at most 3000 characters")
        if errors:
            return {"ok": False, "error": "invalid_blocks", "errors": errors, "response_metadata": {"messages": errors}}
        stamp = time.time_ns()
        view_id = current["id"] if current else f"VH{user}"
        self.homes[user] = {**view, "id": view_id, "hash": f"{stamp}", "user": user, "state": {"values": {}}}
        return {"ok": True, "view": self.homes[user]}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        """https://docs.slack.dev/reference/methods/users.info: the user `user` (required), with their
        `profile` (`email` only with users:read.email, which the stand-in's app has; `display_name` may be
        empty, as it is for everyone who never set one). `profiles` sets a user's profile fields; anyone else
        gets made-up ones. Errors: user_not_found."""
        user = str(args.get("user") or "")
        if not self._user_exists(user):
            return {"ok": False, "error": "user_not_found"}
        handle = user.lower()
        profile = {"real_name": f"User {user}", "display_name": "", "email": f"{handle}@example.com"}
        profile.update(self.profiles.get(user, {}))
        profile.setdefault("real_name_normalized", profile["real_name"])
        profile["display_name_normalized"] = profile["display_name"]
        found = {
            "id": user,
            "team_id": self.team_id,
            "name": handle,
            "deleted": False,
            "real_name": profile["real_name"],
            "is_bot": False,
            "profile": profile,
        }
        return {"ok": True, "user": found}

    def _chat_getPermalink(self, args: dict[str, Any]) -> dict[str, Any]:
        """https://docs.slack.dev/reference/methods/chat.getPermalink: a link to message `message_ts` in
        `channel` (Slack's form: /archives/<channel>/p<ts without its dot>). Errors: channel_not_found,
        message_not_found."""
        message = self.messages.get(args.get("message_ts") or "")
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if message.channel != args.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        link = f"{self.base_url}archives/{message.channel}/p{message.ts.replace('.', '')}"
        return {"ok": True, "channel": message.channel, "permalink": link}

    def home_event(self, user: str) -> dict[str, Any]:
        """The event Slack sends when `user` opens the app's Home tab
        (https://docs.slack.dev/reference/events/app_home_opened): `view` is the view published for
        them, if any. `DevSlack.event_envelope` wraps it."""
        event: dict[str, Any] = {
            "type": "app_home_opened",
            "user": user,
            "channel": self.dms.setdefault(user, dm_id(user)),
            "tab": "home",
        }
        if user in self.homes:
            event["view"] = self.homes[user]
        return event

    def home_click_payload(
        self, user: str, action_id: str, *, value: str | None = None, state: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The block_actions payload Slack sends for a click on `user`'s Home tab: the first element
        `action_id` (with `value`, if given). A view's click has no channel, message or response_url."""
        view = self.homes[user]
        for block in view.get("blocks", []):
            elements = block.get("elements", []) if block.get("type") == "actions" else []
            if block.get("type") == "section" and "accessory" in block:  # a button beside a section's text
                elements = [block["accessory"]]
            for el in elements:
                named = el.get("action_id") == action_id or el.get("action_id", "").startswith(action_id + ":")
                if named and (value is None or el.get("value") == value):
                    return {
                        "type": "block_actions",
                        "user": {"id": user, "username": user},
                        "team": {"id": self.team_id},
                        "api_app_id": "A1",
                        "token": "t",
                        "trigger_id": self._trigger(user),  # type: ignore[attr-defined]
                        "container": {"type": "view", "view_id": view["id"]},
                        "view": {**view, "state": {"values": state or {}}},
                        "actions": [
                            {
                                "type": el["type"],
                                "action_id": el["action_id"],
                                "block_id": block.get("block_id", ""),
                                "value": el.get("value", ""),
                                "action_ts": str(time.time()),
                            }
                        ],
                    }
        raise LookupError(f"{user}'s Home has no {action_id}")

    async def home_click(self, user: str, action_id: str, **kwargs: Any) -> tuple[int, str, float]:
        """Click an element of `user`'s Home tab (see `home_click_payload`)."""
        payload = self.home_click_payload(user, action_id, **kwargs)
        return await self._interaction(payload)  # type: ignore[attr-defined]

    async def socket_home_opened(self, user: str) -> dict[str, Any]:
        """`user` opens the Home tab, delivered over Socket Mode (an `events_api` envelope); returns the
        bot's ack envelope."""
        envelope = {
            "envelope_id": f"env-{time.time_ns()}",
            "type": "events_api",
            "accepts_response_payload": False,
            "payload": self.event_envelope(self.home_event(user)),  # type: ignore[attr-defined]
        }
        return await self.socket_send(envelope)  # type: ignore[attr-defined]
