"""HTTP mode's OAuth install (OAuth mode): Bolt's `AsyncOAuthFlow` with its installations kept in kern's
database (bot/installations.py), served at GET /slack/install and GET /slack/oauth_redirect.

/slack/install shows the "Add to Slack" page: its link goes to Slack's authorize page with a new state
(also set as a cookie in the browser), signed, not stored: the page writes nothing (bot/oauth_state.py).
Slack sends the browser back to /slack/oauth_redirect with a code and that state; Bolt checks the cookie,
consumes the state (its signature and age checked, then recorded: once), exchanges the code with
oauth.v2.access and stores the installation, encrypted (bot/installations.py). From then on the
workspace's requests are authorized by its installation, and the bot's calls for it use its bot token
(`bot.teams`).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.app import make_client
from bot.config import Settings
from bot.connections import Handler
from bot.installations import DbInstallationStore
from bot.oauth_state import SignedStateStore
from bot.teams import TeamClients
from kern.db.base import BaseDb

INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
SLACK_AUTHORIZE_URL = "https://slack.com/oauth/v2/authorize"


def authorization_url(api_url: str | None) -> str:
    """Slack's authorize page; the one beside the Web API when SLACK_API_URL names another (the local
    stand-in serves it at <base>/oauth/v2/authorize, as slack.com does beside slack.com/api/)."""
    if not api_url:
        return SLACK_AUTHORIZE_URL
    return api_url.rstrip("/").removesuffix("/api") + "/oauth/v2/authorize"


class CodeExchangeClient(AsyncWebClient):
    """The client that exchanges install codes. slack_sdk's `oauth_v2_access` wraps the app's credentials in
    aiohttp's `BasicAuth`, which aiohttp deprecates (a DeprecationWarning on every install); this one sends
    the same `Authorization: Basic` header (the form Slack prefers) built here, and is otherwise the client
    it was made from."""

    @classmethod
    def like(cls, client: AsyncWebClient) -> CodeExchangeClient:
        return cls(base_url=client.base_url, retry_handlers=client.retry_handlers, timeout=client.timeout)

    async def oauth_v2_access(
        self,
        *,
        client_id: str,
        client_secret: str,
        code: str | None = None,
        redirect_uri: str | None = None,
        grant_type: str | None = None,
        refresh_token: str | None = None,
        **kwargs: Any,
    ) -> AsyncSlackResponse:
        given = {"code": code, "redirect_uri": redirect_uri, "grant_type": grant_type, "refresh_token": refresh_token}
        kwargs.update({k: v for k, v in given.items() if v is not None})
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")
        return await self.api_call("oauth.v2.access", data=kwargs, headers={"Authorization": f"Basic {basic}"})


def oauth_flow(
    settings: Settings, db: BaseDb, client: AsyncWebClient, installations: DbInstallationStore
) -> AsyncOAuthFlow:
    """The install flow for these settings (OAuth mode), storing in `db`. `client` (no token) exchanges
    codes; `installations` is also what authorizes each request."""
    return AsyncOAuthFlow(
        client=CodeExchangeClient.like(client),
        settings=AsyncOAuthSettings(
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            scopes=[s.strip() for s in settings.scopes.split(",") if s.strip()],
            redirect_uri=settings.redirect_uri,
            install_path=INSTALL_PATH,
            redirect_uri_path=REDIRECT_PATH,
            authorization_url=authorization_url(settings.api_url),
            installation_store=installations,
            installation_store_bot_only=True,  # the bot acts with its own token only: one read per request
            state_store=SignedStateStore(db, settings.client_secret or "", expiration_seconds=settings.state_seconds),
            state_expiration_seconds=int(settings.state_seconds),
        ),
    )


def oauth_parts(settings: Settings, db: BaseDb) -> tuple[TeamClients, AsyncOAuthFlow]:
    """OAuth mode's client factory (each workspace's client from its installation in `db`) and install
    flow, for `bot.app.build_bot`. Raises SettingsError when KERN_TOKEN_KEYS is missing."""
    installations = DbInstallationStore(db, settings.cipher)
    clients = TeamClients(make_client(None, settings.api_url), installations)
    installations.on_saved = clients.forget  # a reinstall's (or an uninstall's) token takes effect at once
    return clients, oauth_flow(settings, db, clients.base, installations)


def add_oauth_routes(
    app: web.Application, flow: AsyncOAuthFlow, wrap: Callable[[Handler], Handler] = lambda handler: handler
) -> None:
    """Serve the flow's two pages on `app` (each handler as `wrap` makes it)."""

    async def install(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await flow.handle_installation(await to_bolt_request(request)))

    async def redirect(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await flow.handle_callback(await to_bolt_request(request)))

    app.router.add_get(flow.install_path, wrap(install))
    app.router.add_get(flow.redirect_uri_path, wrap(redirect))
