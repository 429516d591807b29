"""The HTTP server of `kern-bot serve`: Bolt on aiohttp at POST /slack/events, plus the deadline sweeper,
GET /health (ok or not ok: bot/slack/health.py) and, in OAuth mode, the install pages (bot/slack/oauth.py). The details
of /health and GET /metrics are served on the operations port (bot/slack/ops.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response

from bot.config import Settings
from bot.registry import load_registry
from bot.runs.jobs import REFUSED, Job
from bot.runs.sweeper import sweep_forever
from bot.slack.acknowledged import click_job
from bot.slack.app import KernBot, build_bot, make_client
from bot.slack.connections import ConnectionGuard, Handler
from bot.slack.health import Health
from bot.slack.inbound import (
    RequestRejected,
    decode,
    guard_listeners,
    looks_like_click,
    parse,
    request_key,
    verify_signature,
)
from bot.slack.oauth import add_oauth_routes, oauth_parts
from bot.slack.ops import ops_server
from kern.exceptions import StoreError

BOT_KEY = web.AppKey("kern_bot", KernBot)
log = logging.getLogger("kern_bot")


def create_bot(settings: Settings) -> KernBot:
    """The bot for these settings (raises SettingsError for a bad KERN_DB or KERN_WORKFLOWS)."""
    registry = load_registry(settings.workflows, settings.open_db())
    if settings.oauth:
        clients, flow = oauth_parts(settings, registry.db)
        return build_bot(
            registry,
            clients.base,
            settings.signing_secret,
            clients=clients,
            oauth_flow=flow,
            give_up=settings.give_up_seconds,
            ops_channel=settings.ops_channel,
        )
    client = make_client(settings.bot_token or "", settings.api_url)
    return build_bot(
        registry, client, settings.signing_secret, give_up=settings.give_up_seconds, ops_channel=settings.ops_channel
    )


@contextlib.asynccontextmanager
async def serving(bot: KernBot) -> AsyncIterator[None]:
    """While a bot process serves: its tables exist, one Slack connection pool is open; on the way out,
    background work gets 10 s to finish and is then cancelled (runs are durable: another process takes
    over a run left RUNNING once its lease expires)."""
    await bot.store.ready()
    if bot.jobs is not None:
        await bot.jobs.ready()
    async with bot.gateway.pooled():
        try:
            yield
        finally:
            await bot.background.idle(10)
            await bot.background.cancel_all()
            if bot.jobs is not None:
                await bot.jobs.close()


def create_web_app(
    bot: KernBot,
    *,
    sweep_interval: float = 1.0,
    health_cache: float = 15.0,
    ops: tuple[str, int] | None = None,
    guard: ConnectionGuard | None = None,
) -> web.Application:
    """An aiohttp application serving Slack's requests; the sweeper runs while it is up.

    Every request is checked (`bot.slack.inbound`: signature, then body, then fields) before Bolt dispatches
    it; a malformed one is answered 400 or 401 and changes nothing. A repeated one (a replay, a retry) is
    answered like the first, and the work it would start does not run (`bot.slack.dedupe`, checked by that work,
    so acks never wait for the database).

    GET /health answers 200 `ok` while the database takes a write and Slack answers (Slack's answer is kept
    `health_cache` seconds), else 503 `not ok`. With `ops` (host, port), the operations server runs beside
    it (bot/slack/ops.py): /health naming what is down, and /metrics. With `guard`, each route tells it when its
    request has been read and answered (bot/slack/connections.py; serve the app through its `GuardedSite`).
    """
    secret = bot.signing_secret
    jobs = bot.jobs
    assert jobs is not None, "a bot built by build_bot has its jobs"
    checks = Health(bot.registry.db, bot.gateway, cache_seconds=health_cache)
    ack_seconds = bot.metrics.click_ack
    guard_listeners(bot.app)

    async def slack_events(request: web.Request) -> web.StreamResponse:
        try:
            return await answer(request)
        except web.HTTPException:  # aiohttp's own answers, e.g. 413 for a body over client_max_size
            raise
        except Exception:  # a fault of the bot or its database, not of the request: logged, findable
            ref = uuid.uuid4().hex[:12]
            log.exception("request failed (ref %s)", ref)
            return web.json_response({"error": "internal error", "ref": ref}, status=500)

    async def answer(request: web.Request) -> web.Response:
        started = time.perf_counter()
        raw = await request.read()
        headers, query = request.headers, request.query_string
        try:
            if secret:
                verify_signature(secret, raw, headers)
            text = decode(raw)
            if secret and looks_like_click(text):
                # A click's ack is always an empty 200. Acknowledged means durable: the click is written
                # first (bot/runs/jobs.py: a few milliseconds, shared by the clicks arriving together), then
                # acked; it is parsed and routed later, once clicks stop arriving (Background.defer), so
                # under load the ack waits for no other request's work. If it cannot be written, the
                # clicker is told nothing happened.
                with bot.background.arriving():
                    await accept_click(click_job(request_key(raw), text, headers.get("Content-Type", "")))
                ack_seconds.observe(time.perf_counter() - started)
                return web.Response(status=200)
            bolt_request = parse(text, query, headers)
        except RequestRejected as exc:
            return web.json_response({"error": exc.reason}, status=exc.status)
        return await to_aiohttp_response(await bot.app.async_dispatch(bolt_request))

    async def accept_click(job: Job) -> None:
        """Still safe to answer before the click is parsed: Slack gets the same empty 200 for every delivery
        of a click, whatever it holds, and nothing of a click happens before its job runs, so a malformed
        one is dropped there before it can act (a repeated one is not run: its row exists)."""
        try:
            await jobs.accept_before_ack(job, lambda: bot.background.defer(lambda: jobs.run(job)))
        except StoreError as exc:
            bot.background.spawn_apart(jobs.tell(job, REFUSED, exc))

    async def health(_request: web.Request) -> web.Response:
        healthy, _ = await checks.check()
        return web.Response(text="ok" if healthy else "not ok", status=200 if healthy else 503)

    async def slack_session(app: web.Application) -> AsyncIterator[None]:
        async with serving(bot):
            yield

    async def sweeper(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(sweep_forever(bot.runner, bot.registry, sweep_interval, bot.metrics, jobs=jobs))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await bot.background.idle(10)

    bounded = guard.bounded if guard is not None else _as_is
    app = web.Application()
    app[BOT_KEY] = bot
    app.router.add_post("/slack/events", bounded(slack_events))
    app.router.add_get("/health", bounded(health))
    if bot.app.oauth_flow is not None:  # OAuth mode: /slack/install and /slack/oauth_redirect
        add_oauth_routes(app, bot.app.oauth_flow, bounded)
    app.cleanup_ctx.append(slack_session)  # set up first, so it closes after the sweeper stops
    if ops is not None:
        app.cleanup_ctx.append(ops_server(bot, checks, *ops))
    if sweep_interval > 0:
        app.cleanup_ctx.append(sweeper)
    return app


def _as_is(handler: Handler) -> Handler:
    return handler
