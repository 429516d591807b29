"""`kern-bot`: serve (HTTP), socket (Socket Mode)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from bot.config import Settings, SettingsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kern-bot", description="The Slack side of kern's human-in-the-loop pauses.")
    sub = parser.add_subparsers(dest="mode", required=True)
    serve = sub.add_parser("serve", help="HTTP mode: Slack sends requests to POST /slack/events")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=3000)
    serve.add_argument("--sweep-interval", type=float, default=1.0, help="seconds between deadline sweeps")
    socket = sub.add_parser("socket", help="Socket Mode: no public URL needed (needs SLACK_APP_TOKEN)")
    socket.add_argument("--sweep-interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.load().check(args.mode)
        from bot.server import create_bot

        bot = create_bot(settings)
    except SettingsError as exc:
        print(f"kern-bot: {exc}", file=sys.stderr)
        return 2
    if args.mode == "serve":
        from aiohttp import web

        from bot.server import create_web_app

        print(
            f"kern-bot: serving /slack/events on http://{args.host}:{args.port} "
            f"({len(bot.runner.registry.entries)} workflows, db {settings.db})"
        )
        web.run_app(create_web_app(bot, sweep_interval=args.sweep_interval), host=args.host, port=args.port, print=None)
        return 0
    return asyncio.run(_socket_mode(bot, settings, args.sweep_interval))


async def _socket_mode(bot: object, settings: Settings, sweep_interval: float) -> int:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    from bot.sweeper import sweep_forever

    handler = AsyncSocketModeHandler(bot.app, settings.app_token)  # type: ignore[attr-defined]
    sweeper = asyncio.create_task(sweep_forever(bot.runner, sweep_interval))  # type: ignore[attr-defined]
    try:
        await handler.start_async()
    finally:
        sweeper.cancel()
        await handler.close_async()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
