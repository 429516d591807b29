"""The stand-in's side of Slack's OAuth install (https://docs.slack.dev/authentication/installing-with-oauth):
the authorize page and `oauth.v2.access`, checked as Slack checks them, and the workspaces it hosts.

GET /oauth/v2/authorize?client_id&scope&state[&redirect_uri][&team] stands for a person approving the
install in workspace `installing_team` (or the `team` asked for): it sends the browser to the app's
redirect URL with a one-time code and the state, unchanged. `oauth.v2.access` exchanges that code, once
and within 10 minutes, for a new bot token of that workspace, if the client id and secret are the app's
and the redirect URL is the one the authorize page was given. Errors are Slack's: invalid_client_id,
bad_client_secret, invalid_code, bad_redirect_uri.

A mixin of `DevSlack` (bot/devslack/slack.py), which dispatches `/api/<method>` to `_<method>`.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

CODE_TTL = 600.0  # Slack's codes expire after ten minutes


@dataclass
class Grant:
    """An issued code: for which app and workspace, back to which redirect URL (None: not given)."""

    client_id: str
    team: str
    redirect_uri: str | None
    scopes: str
    at: float
    used: bool = False


class OAuthApi:
    """The app's OAuth credentials (`client_id`, `client_secret`, `redirect_urls`: the registered redirect
    URLs) and the install flow. Uses DevSlack's `teams` (bot token -> workspace) and `team_id`."""

    teams: dict[str, str]
    team_id: str
    no_token_methods = frozenset({"oauth.v2.access", "api.test"})

    def init_oauth(self) -> None:
        self.client_id = "1111.2222"
        self.client_secret = secrets.token_hex(16)
        self.redirect_urls: list[str] = []
        self.installing_team = self.team_id
        self.codes: dict[str, Grant] = {}
        self.installs: list[dict[str, Any]] = []  # oauth.v2.access answers that installed the app, in turn

    def add_oauth_routes(self, app: web.Application) -> None:
        app.router.add_get("/oauth/v2/authorize", self._authorize)

    @contextlib.contextmanager
    def as_team(self, team: str) -> Iterator[None]:
        """Within: requests sent to the bot come from workspace `team`."""
        before, self.team_id = self.team_id, team
        try:
            yield
        finally:
            self.team_id = before

    def token_of(self, team: str) -> str:
        """The newest bot token of workspace `team`."""
        return [token for token, t in self.teams.items() if t == team][-1]

    async def _authorize(self, request: web.Request) -> web.Response:
        query = request.query
        if query.get("client_id") != self.client_id:
            return web.Response(status=400, text="invalid_client_id")
        if not query.get("scope"):
            return web.Response(status=400, text="invalid_scope")
        redirect = query.get("redirect_uri")
        if redirect is not None and redirect not in self.redirect_urls:
            return web.Response(status=400, text="bad_redirect_uri")
        target = redirect or (self.redirect_urls[0] if len(self.redirect_urls) == 1 else None)
        if target is None:
            return web.Response(status=400, text="bad_redirect_uri")
        code = f"{int(time.time())}.{secrets.token_hex(12)}"
        team = query.get("team") or self.installing_team
        self.codes[code] = Grant(self.client_id, team, redirect, query["scope"], time.time())
        back = {"code": code, "state": query.get("state", "")}
        raise web.HTTPFound(f"{target}{'&' if '?' in target else '?'}{urllib.parse.urlencode(back)}")

    def _api_test(self, args: dict[str, Any], request: web.Request) -> dict[str, Any]:
        return {"ok": True, "args": {k: v for k, v in args.items() if k != "token"}}

    def _oauth_v2_access(self, args: dict[str, Any], request: web.Request) -> dict[str, Any]:
        client_id, secret = args.get("client_id"), args.get("client_secret")
        basic = request.headers.get("Authorization", "")
        if basic.startswith("Basic "):  # Slack prefers the credentials as HTTP Basic auth
            with contextlib.suppress(ValueError):
                client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
        if client_id != self.client_id:
            return {"ok": False, "error": "invalid_client_id"}
        if secret != self.client_secret:
            return {"ok": False, "error": "bad_client_secret"}
        grant = self.codes.get(args.get("code") or "")
        if grant is None or grant.used or time.time() - grant.at > CODE_TTL or grant.client_id != client_id:
            return {"ok": False, "error": "invalid_code"}
        if grant.redirect_uri is not None and args.get("redirect_uri") != grant.redirect_uri:
            return {"ok": False, "error": "bad_redirect_uri"}
        grant.used = True
        token = f"xoxb-{grant.team}-{secrets.token_hex(8)}"
        self.teams[token] = grant.team
        answer = {
            "ok": True,
            "access_token": token,
            "token_type": "bot",
            "scope": grant.scopes,
            "bot_user_id": "UBOT",
            "app_id": "A1",
            "team": {"id": grant.team, "name": f"Team {grant.team}"},
            "enterprise": None,
            "is_enterprise_install": False,
            "authed_user": {"id": "U1"},
        }
        self.installs.append(answer)
        return answer
