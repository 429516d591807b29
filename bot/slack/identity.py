"""Who a Slack user is, for a conversation that resolves identities (`BotAgent(resolve_user_identity=True)`):
their email (the run's `user_id`) and the name Slack shows for them, from `users.info` through the gateway.

Looked up once per workspace and user, then kept for `KEEP` seconds. A lookup never holds a turn up for
long: it is bounded by `WITHIN` seconds, and when Slack refuses it, does not answer, or the person has no
email (the app lacks `users:read.email`), the turn goes on with their Slack id, and the failure is logged
(and not kept: the next turn asks again).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from bot.slack.gateway import SlackCallFailed, SlackGateway
from bot.slack.workspaces import team

log = logging.getLogger("kern_bot")

KEEP = 3600.0  # seconds a looked-up person is kept (a renamed person shows their new name after that)
WITHIN = 3.0  # seconds a lookup may take before the turn goes on without it


@dataclass(frozen=True)
class Person:
    """A Slack user as a run knows them: `user_id` is their email, or their Slack id when it is not known;
    `name` is their display name (else their real name, else their handle), None when not known."""

    slack_id: str
    user_id: str
    name: str | None = None


class People:
    """`users.info` lookups, kept per workspace and user."""

    def __init__(self, gateway: SlackGateway, *, keep: float = KEEP, within: float = WITHIN) -> None:
        self.gateway = gateway
        self.keep = keep
        self.within = within
        self._known: dict[tuple[str, str], tuple[float, Person]] = {}

    async def resolve(self, user: str) -> Person:
        """Who `user` (a Slack user id) is; never raises: a failed lookup gives `Person(user, user)`."""
        if not user.startswith(("U", "W")):  # another app's bot id (B…): users.info knows only people
            return Person(user, user)
        key = (team(), user)
        kept = self._known.get(key)
        if kept is not None and time.monotonic() - kept[0] < self.keep:
            return kept[1]
        try:
            async with asyncio.timeout(self.within):
                answer = await self.gateway.send("users_info", patience=self.within, user=user)
        except (SlackCallFailed, TimeoutError) as exc:
            log.warning("users.info for %s failed (%s): the turn goes on with the Slack id", user, exc)
            return Person(user, user)
        person = from_users_info(user, answer)
        if person.user_id == user:
            log.info("users.info gave no email for %s (is users:read.email granted?): the Slack id is used", user)
        self._known[key] = (time.monotonic(), person)
        return person


def from_users_info(user: str, answer: dict[str, object]) -> Person:
    """A `Person` from a users.info answer (https://docs.slack.dev/reference/methods/users.info): the email
    and display name are in the user's `profile`; an empty display name falls back to the real name."""
    found = answer.get("user")
    info = found if isinstance(found, dict) else {}
    profile = info.get("profile") if isinstance(info.get("profile"), dict) else {}
    assert isinstance(profile, dict)
    email = str(profile.get("email") or "").strip()
    names = (profile.get("display_name"), profile.get("real_name"), info.get("real_name"), info.get("name"))
    name = next((str(n).strip() for n in names if isinstance(n, str) and n.strip()), None)
    return Person(user, email or user, name)
