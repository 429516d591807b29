"""The operations port: GET /health with what is down and why, and GET /metrics, for the people and tools
that run the bot, on an address of their own (KERN_OPS_HOST:KERN_OPS_PORT, 127.0.0.1:3030 by default), not
on the port Slack calls. That one answers only GET /health with `ok` or `not ok` (bot/server.py), so a
stranger learns nothing of the deployment (its workflows, its database, its counters).

The operations server starts and stops with the public one (`ops_server`, a cleanup context of its app).
If its address is taken, the bot still serves Slack and logs an error naming the settings.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from bot.app import KernBot
from bot.health import Health
from bot.metrics import CONTENT_TYPE

OPS_URL = web.AppKey("kern_bot_ops_url", str)  # on the public app: the operations server's base URL, once up
log = logging.getLogger("kern_bot")


def create_ops_app(bot: KernBot, checks: Health) -> web.Application:
    """GET /health (200 or 503, with each part's state and the workflows served) and GET /metrics."""

    async def health(_request: web.Request) -> web.Response:
        healthy, body = await checks.check()
        body["workflows"] = sorted(bot.registry.entries)
        return web.json_response(body, status=200 if healthy else 503)

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=await bot.metrics.render(bot.registry.db), headers={"Content-Type": CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    return app


def ops_server(bot: KernBot, checks: Health, host: str, port: int) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context for the public app: the operations server on `host`:`port` (0: a free port) while
    the public app runs; its URL in the public app's OPS_URL."""

    async def serve(public: web.Application) -> AsyncIterator[None]:
        runner = web.AppRunner(create_ops_app(bot, checks), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:  # the bot still serves Slack; the people who run it are told, loudly
            log.error("operations port %s:%s not served (%s): set KERN_OPS_HOST / KERN_OPS_PORT", host, port, exc)
        else:
            public[OPS_URL] = f"http://{host}:{site.port}"
            log.info("operations: GET /health and /metrics on http://%s:%s", host, site.port)
        try:
            yield
        finally:
            await runner.cleanup()

    return serve
