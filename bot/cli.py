"""`kern-bot`: serve (HTTP), socket (Socket Mode), dev (everything on this machine, in a browser), and
db (upgrade the database's tables: `kern-bot db upgrade`)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from typing import TYPE_CHECKING

from bot.config import Settings, SettingsError
from bot.logs import setup_logging
from kern.db.base import BaseDb
from kern.exceptions import SchemaVersionError

if TYPE_CHECKING:
    from aiohttp import web

    from bot.slack.connections import ConnectionGuard

DEV_PIECE_DELAY = 0.03  # seconds between the scripted model's pieces under `kern-bot dev`: its answers visibly stream


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kern-bot", description="The Slack side of kern's human-in-the-loop pauses.")
    logs = argparse.ArgumentParser(add_help=False)
    logs.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="text lines, or one JSON object per line with run_id and requirement_id (default: KERN_LOG_FORMAT)",
    )
    sub = parser.add_subparsers(dest="mode", required=True)
    serve = sub.add_parser("serve", parents=[logs], help="HTTP mode: Slack sends requests to POST /slack/events")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=3000)
    serve.add_argument(
        "--sweep-interval",
        type=float,
        default=1.0,
        help="seconds between sweeps (deadlines, takeovers of runs whose process died, messages owed to Slack)",
    )
    serve.add_argument("--access-log", action="store_true", help="log every HTTP request (costs ack latency)")
    socket = sub.add_parser("socket", parents=[logs], help="Socket Mode: no public URL needed (needs SLACK_APP_TOKEN)")
    socket.add_argument("--sweep-interval", type=float, default=1.0)
    dev = sub.add_parser(
        "dev", parents=[logs], help="no Slack needed: the bot, a local Slack and its web page on 127.0.0.1"
    )
    dev.add_argument("--port", type=int, default=3000, help="the web page and the local Slack")
    dev.add_argument("--bot-port", type=int, default=3001, help="the bot's /slack/events")
    db = sub.add_parser(
        "db", parents=[logs], help="the database's tables (KERN_DB): upgrade them to this version's schema"
    )
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="upgrade kern's and the bot's tables to the newest revision (safe to repeat)")
    revision = db_sub.add_parser("revision", help="for developers: write the next revision of the bot's tables")
    revision.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)
    try:
        loaded = Settings.load()
    except SettingsError as exc:
        print(f"kern-bot: {exc}", file=sys.stderr)
        return 2
    log_format = args.log_format or loaded.log_format
    setup_logging(log_format)
    if args.mode == "db":
        return _db_command(args, loaded)
    if args.mode == "dev":
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
        try:
            settings = loaded.check("dev")
            asyncio.run(_prepare_db(settings))
            return asyncio.run(_dev(settings, args.port, args.bot_port))
        except (SettingsError, SchemaVersionError) as exc:
            print(f"kern-bot: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 0
    try:
        settings = loaded.check(args.mode)
        from bot.slack.server import create_bot

        bot = create_bot(settings)
        asyncio.run(_prepare_db(settings))
    except (SettingsError, SchemaVersionError) as exc:
        print(f"kern-bot: {exc}", file=sys.stderr)
        return 2
    if args.mode == "serve":
        from bot.slack.connections import ConnectionGuard
        from bot.slack.server import create_web_app

        serving = (
            f"kern-bot: serving /slack/events on http://{args.host}:{args.port} "
            f"({len(bot.registry.entries)} workflows, db {settings.db})"
        )
        if settings.oauth:
            serving += f"; workspaces install the app at http://{args.host}:{args.port}/slack/install"
        serving += f"; GET /health and /metrics on http://{settings.ops_host}:{settings.ops_port}"
        if log_format == "json":
            logging.getLogger("kern_bot").info("%s", serving)
        else:
            print(serving)
        guard = ConnectionGuard(max_connections=settings.max_connections, read_seconds=settings.read_seconds)
        app = create_web_app(
            bot,
            sweep_interval=args.sweep_interval,
            health_cache=settings.health_cache_seconds,
            ops=(settings.ops_host, settings.ops_port),
            guard=guard,
        )
        _settle_heap()
        asyncio.run(_serve_http(app, args.host, args.port, guard, access_log=args.access_log))
        return 0
    _settle_heap()
    return asyncio.run(_socket_mode(bot, settings, args.sweep_interval))


async def _serve_http(app: web.Application, host: str, port: int, guard: ConnectionGuard, *, access_log: bool) -> None:
    """Serve `app` on host:port through `guard` until SIGINT or SIGTERM, then shut down as aiohttp's
    `run_app` does (requests in progress get up to 60 s)."""
    import signal

    from aiohttp import web

    from bot.slack.connections import GuardedSite

    runner = web.AppRunner(
        app, access_log=web.access_logger if access_log else None, keepalive_timeout=guard.idle_seconds
    )
    await runner.setup()
    try:
        await GuardedSite(runner, host, port, guard).start()
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def _settle_heap() -> None:
    """Before serving: what start-up built (modules, the app, the workflows) lives as long as the process,
    so it is moved out of the cyclic collector's way (`gc.freeze`) rather than traversed again by every full
    collection under load (measured: 14% of the bot's CPU in a 200-click burst, 4% after)."""
    gc.collect()
    gc.freeze()


def _db_command(args: argparse.Namespace, loaded: Settings) -> int:
    if args.db_command == "revision":
        from bot.store.migrations import BOT

        print(f"kern-bot: wrote {BOT.new_revision(args.message)}; read it before committing it")
        return 0
    try:
        settings = loaded.check("db")
        for line in asyncio.run(_prepare_db(settings, upgrade=True)):
            print(line)
    except (SettingsError, SchemaVersionError) as exc:
        print(f"kern-bot: {exc}", file=sys.stderr)
        return 2
    return 0


async def _prepare_db(settings: Settings, *, upgrade: bool = False) -> list[str]:
    """Before serving: check that kern's and the bot's tables are at the revision this code needs (one
    line and exit if not), upgrading them with `upgrade` or KERN_DB_AUTO_UPGRADE=1. Returns what was done."""
    from bot.store.migrations import BOT

    db = settings.open_db()
    try:
        done: list[str] = []
        if upgrade or settings.auto_upgrade:
            done = await db.upgrade(BOT)
            if not upgrade:
                print("\n".join(f"kern-bot: {line}" for line in done), flush=True)
        else:
            await db.run_transaction(lambda _conn: None, write=False, tables=BOT)
        if settings.oauth:
            done += await _encrypt_installations(settings, db)
        return done
    finally:
        await db.close()


async def _encrypt_installations(settings: Settings, db: BaseDb) -> list[str]:
    """OAuth mode: encrypt stored installations still in clear text, and re-encrypt the others with the
    first key of KERN_TOKEN_KEYS (rotation). Raises SettingsError if the keys decrypt none of them (wrong
    keys); rows that some key decrypts are served, and the others are named in an error line (a fault of
    those rows stays theirs)."""
    from bot.slack.installations import DbInstallationStore
    from bot.token_keys import SETTING

    encrypted, rotated, unreadable, total = await DbInstallationStore(db, settings.cipher).encrypt_all()
    if unreadable:
        problem = (
            f"{SETTING} does not decrypt {len(unreadable)} stored installation(s) ({'; '.join(unreadable[:3])}): "
            f"put back the key they were encrypted with, after the new ones."
        )
        if len(unreadable) == total:
            raise SettingsError(problem)
        logging.getLogger("kern_bot").error("%s Their workspaces' requests fail until then.", problem)
    if not (encrypted or rotated):
        return []
    line = f"installations: {encrypted} encrypted, {rotated} re-encrypted with the first key of {SETTING}"
    logging.getLogger("kern_bot").info("%s", line)
    return [line]


async def _dev(settings: Settings, port: int, bot_port: int) -> int:
    import os
    import secrets
    import signal

    from aiohttp import web

    from bot.devslack.persist import state_file_for
    from bot.devslack.web import DevSlackWeb
    from bot.registry import load_registry
    from bot.scripted_model import ScriptedModel, alert_script
    from bot.slack.app import build_bot, make_client
    from bot.slack.server import create_web_app

    secret = secrets.token_hex(16)
    scripted = None
    if not settings.workflows and not os.environ.get("OPENAI_BASE_URL"):  # the agent example, no LLM needed
        scripted = ScriptedModel(fallback=alert_script, piece_delay=DEV_PIECE_DELAY).start()  # its answers stream
    registry = load_registry(
        settings.workflows, settings.open_db(), scripted_model_url=scripted.base_url if scripted else None
    )
    state_file = state_file_for(settings.db)
    notice = "The alert agent runs on a scripted model (replies from a script, not an LLM)." if scripted else ""
    slack_web = DevSlackWeb(signing_secret=secret, token="xoxb-dev", port=port, state_file=state_file, notice=notice)
    # Known before the page answers: a click sent while the bot starts fails as a refused connection
    # (the page shows Slack's error), not as a request to no URL.
    slack_web.bot_endpoint = f"http://127.0.0.1:{bot_port}/slack/events"
    async with slack_web as slack:
        bot = build_bot(registry, make_client(slack.token, slack.api_url), secret)
        runner = web.AppRunner(create_web_app(bot, ops=(settings.ops_host, settings.ops_port)))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", bot_port).start()
        await slack.bot_joins()  # the app is added to the channel: its intro, posted by the bot, comes first
        model = (
            " The `alert` agent runs on a scripted model (replies from a script, not an LLM); "
            "set OPENAI_BASE_URL for a real one."
            if scripted
            else ""
        )
        print(
            f"kern-bot dev: open {slack.base_url} (a local Slack channel; type /kern list). "
            f"{len(registry.entries)} workflows, runs kept in {settings.db}, the channel in {state_file}; "
            f"GET /health and /metrics on http://{settings.ops_host}:{settings.ops_port}.{model} "
            "Ctrl-C stops.",
            flush=True,
        )
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):  # stop cleanly: the channel file gets its last write
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
            if scripted is not None:
                scripted.stop()
    return 0


async def _socket_mode(bot: object, settings: Settings, sweep_interval: float) -> int:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    from bot.runs.sweeper import sweep_forever
    from bot.slack.server import serving

    handler = AsyncSocketModeHandler(bot.app, settings.app_token)  # type: ignore[attr-defined]
    sweeper = asyncio.create_task(
        sweep_forever(bot.runner, bot.registry, sweep_interval, bot.metrics, jobs=bot.jobs)  # type: ignore[attr-defined]
    )
    try:
        async with serving(bot):  # type: ignore[arg-type]
            await handler.start_async()
    finally:
        sweeper.cancel()
        await handler.close_async()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
