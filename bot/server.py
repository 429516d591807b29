"""The HTTP server of `kern-bot serve`: Bolt on aiohttp at POST /slack/events, plus the deadline sweeper."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections.abc import AsyncIterator

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

from bot.app import KernBot, build_bot, make_client
from bot.config import Settings
from bot.registry import load_registry
from bot.sweeper import sweep_forever

BOT_KEY = web.AppKey("kern_bot", KernBot)


def _is_click(body: bytes) -> bool:
    """A block_actions payload (judged from its first bytes, without parsing the whole payload)."""
    head = urllib.parse.unquote_plus(body[:120].decode("utf-8", "ignore")).replace(" ", "")
    return head.startswith('payload={"type":"block_actions"')


def create_bot(settings: Settings) -> KernBot:
    """The bot for these settings (raises SettingsError for a bad KERN_DB or KERN_WORKFLOWS)."""
    registry = load_registry(settings.workflows, settings.open_db())
    client = make_client(settings.bot_token or "", settings.api_url)
    return build_bot(registry, client, settings.signing_secret)


@contextlib.asynccontextmanager
async def serving(bot: KernBot) -> AsyncIterator[None]:
    """While a bot process serves: its tables exist, one Slack connection pool is open; on the way out,
    background work gets 10 s to finish and is then cancelled (runs are durable: another process takes
    over a run left RUNNING once its lease expires)."""
    await bot.store.ready()
    async with bot.gateway.pooled():
        try:
            yield
        finally:
            await bot.background.idle(10)
            await bot.background.cancel_all()


def create_web_app(bot: KernBot, *, sweep_interval: float = 1.0) -> web.Application:
    """An aiohttp application serving Slack's requests; the sweeper runs while it is up."""

    verifier = SignatureVerifier(bot.signing_secret) if bot.signing_secret else None

    async def slack_events(request: web.Request) -> web.Response:
        body = await request.read()
        if verifier is not None and _is_click(body):
            # A click's ack is always an empty 200: answer it here, after checking the signature, and let
            # Bolt parse and route it later (Runner.defer). Under load the ack no longer waits behind other
            # requests' work (commands and form submissions, whose ack carries content, go through Bolt).
            headers = request.headers
            if not verifier.is_valid(
                body, headers.get("X-Slack-Request-Timestamp", ""), headers.get("X-Slack-Signature", "")
            ):
                return web.json_response({"error": "invalid request"}, status=401)
            query = request.query_string
            bot.background.defer(
                lambda: bot.app.async_dispatch(AsyncBoltRequest(body=body.decode(), query=query, headers=headers))
            )
            return web.Response(status=200)
        return await to_aiohttp_response(await bot.app.async_dispatch(await to_bolt_request(request)))

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "workflows": sorted(bot.registry.entries)})

    async def slack_session(app: web.Application) -> AsyncIterator[None]:
        async with serving(bot):
            yield

    async def sweeper(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(sweep_forever(bot.runner, bot.registry, sweep_interval))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await bot.background.idle(10)

    app = web.Application()
    app[BOT_KEY] = bot
    app.router.add_post("/slack/events", slack_events)
    app.router.add_get("/health", health)
    app.cleanup_ctx.append(slack_session)  # set up first, so it closes after the sweeper stops
    if sweep_interval > 0:
        app.cleanup_ctx.append(sweeper)
    return app
