"""`kern-bot`: serve (HTTP), socket (Socket Mode), dev (everything on this machine, in a browser)."""

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
    serve.add_argument(
        "--sweep-interval",
        type=float,
        default=1.0,
        help="seconds between sweeps (deadlines, takeovers of runs whose process died, messages owed to Slack)",
    )
    serve.add_argument("--access-log", action="store_true", help="log every HTTP request (costs ack latency)")
    socket = sub.add_parser("socket", help="Socket Mode: no public URL needed (needs SLACK_APP_TOKEN)")
    socket.add_argument("--sweep-interval", type=float, default=1.0)
    dev = sub.add_parser("dev", help="no Slack needed: the bot, a local Slack and its web page on 127.0.0.1")
    dev.add_argument("--port", type=int, default=3000, help="the web page and the local Slack")
    dev.add_argument("--bot-port", type=int, default=3001, help="the bot's /slack/events")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.mode == "dev":
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
        try:
            settings = Settings.load().check("dev")
            return asyncio.run(_dev(settings, args.port, args.bot_port))
        except SettingsError as exc:
            print(f"kern-bot: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 0
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
            f"({len(bot.registry.entries)} workflows, db {settings.db})"
        )
        web.run_app(
            create_web_app(bot, sweep_interval=args.sweep_interval),
            host=args.host,
            port=args.port,
            print=None,
            access_log=web.access_logger if args.access_log else None,
        )
        return 0
    return asyncio.run(_socket_mode(bot, settings, args.sweep_interval))


async def _dev(settings: Settings, port: int, bot_port: int) -> int:
    import secrets

    from aiohttp import web

    from bot.app import build_bot, make_client
    from bot.devslack.web import DevSlackWeb
    from bot.registry import load_registry
    from bot.server import create_web_app

    secret = secrets.token_hex(16)
    registry = load_registry(settings.workflows, settings.open_db())
    async with DevSlackWeb(signing_secret=secret, token="xoxb-dev", port=port) as slack:
        bot = build_bot(registry, make_client(slack.token, slack.api_url), secret)
        runner = web.AppRunner(create_web_app(bot))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", bot_port).start()
        slack.bot_endpoint = f"http://127.0.0.1:{bot_port}/slack/events"
        print(
            f"kern-bot dev: open {slack.base_url} (a local Slack channel; type /kern list). "
            f"{len(registry.entries)} workflows, runs kept in {settings.db}. Ctrl-C stops.",
            flush=True,
        )
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
    return 0


async def _socket_mode(bot: object, settings: Settings, sweep_interval: float) -> int:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    from bot.server import serving
    from bot.sweeper import sweep_forever

    handler = AsyncSocketModeHandler(bot.app, settings.app_token)  # type: ignore[attr-defined]
    sweeper = asyncio.create_task(sweep_forever(bot.runner, bot.registry, sweep_interval))  # type: ignore[attr-defined]
    try:
        async with serving(bot):  # type: ignore[arg-type]
            await handler.start_async()
    finally:
        sweeper.cancel()
        await handler.close_async()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
