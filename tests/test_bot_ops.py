"""Operating kern-bot: GET /metrics moves as runs move, GET /health names what is down, and
`--log-format json` writes parseable lines carrying the run and the pause. All through real HTTP (and, for
the logs, a real `kern-bot serve` process)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import resource
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from bot import blocks as ui
from bot.devslack import DevSlack
from bot.runs.sweeper import sweep_once
from bot.slack.app import build_bot, make_client
from bot.slack.health import PROBE_SECONDS
from bot.slack.ops import OPS_URL
from bot.slack.server import create_web_app
from kern.db.postgres import PostgresDb
from tests.conftest import PG_URL, free_port, make_db, require_postgres, unique
from tests.test_bot_cluster import timed_registry
from tests.test_bot_e2e import OPS_URLS, SECRET, Env, bot_env, registry_for, run, settle, start_bot

ROOT = Path(__file__).resolve().parent.parent
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def ops_of(endpoint: str) -> str:
    """The operations server of the test bot whose /slack/events is `endpoint` (or `endpoint` itself, when it
    is an operations URL already)."""
    return OPS_URLS.get(endpoint, endpoint)


async def scrape(endpoint: str) -> Samples:
    """GET /metrics of the bot at `endpoint` (its operations port), parsed by prometheus_client's parser."""
    async with aiohttp.ClientSession() as session, session.get(ops_of(endpoint) + "/metrics") as resp:
        assert resp.status == 200 and resp.content_type == "text/plain"
        text = await resp.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def health(endpoint: str) -> tuple[int, dict[str, object]]:
    """GET /health of the bot at `endpoint`, on its operations port: (status, the body naming what is down)."""
    async with aiohttp.ClientSession() as session, session.get(ops_of(endpoint) + "/health") as resp:
        return resp.status, await resp.json()


async def public_health(base: str) -> tuple[int, str]:
    """GET /health on the port Slack calls (`base`: http://host:port)."""
    async with aiohttp.ClientSession() as session, session.get(base + "/health") as resp:
        return resp.status, await resp.text()


def runs(samples: Samples, status: str) -> float:
    return samples[("kern_runs", (("status", status),))]


def decisions(samples: Samples, source: str) -> float:
    return samples[("kern_bot_decisions_total", (("source", source),))]


# ----- /metrics -------------------------------------------------------------------------------------
@pytest.fixture
async def fresh(tmp_path: Path) -> AsyncIterator[Env]:
    """A bot on a SQLite file of its own, so the database's numbers are exactly this test's."""
    db = make_db("sqlite", tmp_path)
    async with bot_env(registry_for(db), db) as env:
        yield env


async def test_metrics_move_as_runs_move(fresh: Env) -> None:
    env, endpoint = fresh, fresh.slack.bot_endpoint
    before = await scrape(endpoint)
    assert runs(before, "PAUSED") == 0 and before[("kern_bot_open_pauses", ())] == 0
    assert decisions(before, "person") == 0 and before[("kern_bot_click_ack_seconds_count", ())] == 0
    assert before[("kern_bot_outbox_backlog", ())] == 0 and before[("kern_bot_takeovers_total", ())] == 0

    card = await run(env, "deploy api")
    paused = await scrape(endpoint)
    assert runs(paused, "PAUSED") == 1 and paused[("kern_bot_open_pauses", ())] == 1

    env.slack.fail_next["chat.update"] = ["internal_error"] * 20  # what the decision owes Slack stays owed
    status, _, _ = await env.slack.click(ui.CONFIRM, user="U2")
    assert status == 200
    await settle(env)
    decided = await scrape(endpoint)
    assert runs(decided, "PAUSED") == 0 and runs(decided, "COMPLETED") == 1
    assert decided[("kern_bot_open_pauses", ())] == 0
    assert decisions(decided, "person") == 1
    assert decided[("kern_bot_click_ack_seconds_count", ())] == 1
    assert decided[("kern_bot_click_ack_seconds_bucket", (("le", "3.0"),))] == 1  # acked within Slack's 3 s
    assert decided[("kern_bot_outbox_backlog", ())] >= 1

    env.slack.fail_next.pop("chat.update")
    await asyncio.sleep(1.1)  # past the first retry's backoff
    await sweep_once(env.bot.runner, env.bot.registry, metrics=env.bot.metrics)
    await env.bot.background.idle(10)
    delivered = await scrape(endpoint)
    assert delivered[("kern_bot_outbox_backlog", ())] == 0
    assert "Completed" in json.dumps(env.slack.messages[card.ts].blocks)
    assert delivered[("kern_bot_sweep_lag_seconds", ())] < 1.0 < before[("kern_bot_sweep_lag_seconds", ())] + 1.0
    assert delivered[("kern_bot_sweep_duration_seconds", ())] > 0


async def test_deadline_decisions_are_counted(tmp_path: Path) -> None:
    async with DevSlack(SECRET) as slack:
        bot, server, endpoint = await start_bot(slack, timed_registry(make_db("sqlite", tmp_path), "timed"))
        slack.bot_endpoint = endpoint
        try:
            await slack.command("run timed2")
            await slack.until(
                lambda: slack.messages and "Approval needed" in json.dumps(list(slack.messages.values())[-1].blocks)
            )
            await slack.click(ui.CONFIRM)
            await slack.until(lambda: "approved automatically" in json.dumps(list(slack.messages.values())[-1].blocks))
            await bot.background.idle()
            assert await sweep_once(bot.runner, bot.registry, now=time.time() + 60, metrics=bot.metrics) == 1
            await bot.background.idle()
            samples = await scrape(endpoint)
            assert (decisions(samples, "person"), decisions(samples, "timeout")) == (1, 1)
            assert runs(samples, "COMPLETED") == 1
        finally:
            await server.cleanup()


async def test_metrics_on_postgres() -> None:
    """The scrape's queries run on PostgreSQL too (its tables are shared with other tests: no exact counts)."""
    require_postgres()
    async with DevSlack(SECRET) as slack:
        bot, server, endpoint = await start_bot(slack, registry_for(PostgresDb(db_url=PG_URL)))
        slack.bot_endpoint = endpoint
        try:
            await slack.command("run deploy db")
            await slack.until(
                lambda: any("Deploy to production?" in json.dumps(m.blocks) for m in slack.messages.values())
            )
            samples = await scrape(endpoint)
            assert runs(samples, "PAUSED") >= 1 and samples[("kern_bot_open_pauses", ())] >= 1
            assert samples[("kern_bot_outbox_backlog", ())] >= 0
        finally:
            await bot.background.idle(10)
            await server.cleanup()


async def test_sweeper_reports_its_lag(tmp_path: Path) -> None:
    """With its sweeper running (every 50 ms), a bot's sweep lag stays small; the sweeps take time."""
    async with DevSlack(SECRET) as slack:
        bot = build_bot(registry_for(make_db("sqlite", tmp_path)), make_client(slack.token, slack.api_url), SECRET)
        runner = web.AppRunner(create_web_app(bot, sweep_interval=0.05, ops=("127.0.0.1", 0)))
        await runner.setup()
        try:
            await asyncio.sleep(0.5)
            samples = await scrape(runner.app[OPS_URL])
            assert samples[("kern_bot_sweep_lag_seconds", ())] < 0.4
            assert 0 < samples[("kern_bot_sweep_duration_seconds", ())] < 0.4
        finally:
            await runner.cleanup()


# ----- /health ---------------------------------------------------------------------------------------
async def test_health_names_slack_when_slack_refuses(tmp_path: Path) -> None:
    async with DevSlack(SECRET) as slack:
        bot = build_bot(registry_for(make_db("sqlite", tmp_path)), make_client(slack.token, slack.api_url), SECRET)
        runner = web.AppRunner(create_web_app(bot, sweep_interval=0, health_cache=0.3, ops=("127.0.0.1", 0)))
        await runner.setup()
        endpoint = runner.app[OPS_URL]
        try:
            status, body = await health(endpoint)
            assert status == 200 and body["ok"] is True
            assert (body["database"], body["slack"]) == ("ok", "ok")
            asked = sum(1 for c in slack.calls if c[0] == "auth.test")
            assert asked == 1
            await asyncio.gather(*(health(endpoint) for _ in range(20)))
            assert sum(1 for c in slack.calls if c[0] == "auth.test") == 1  # answered from the cache

            await asyncio.sleep(0.35)  # the cached answer is now too old
            slack.fail_next["auth.test"] = "invalid_auth"  # a revoked token
            status, body = await health(endpoint)
            assert status == 503 and body["ok"] is False and body["down"] == ["slack", "workspaces"]
            assert body["slack"] == "invalid_auth" and body["database"] == "ok"
            assert body["workspaces"] == "default: invalid_auth"  # the workspace whose token Slack refused

            await asyncio.sleep(0.35)
            status, body = await health(endpoint)  # Slack answers again
            assert status == 200 and body["slack"] == "ok" and body["workspaces"] == "ok"
        finally:
            await runner.cleanup()


class Proxy:
    """A TCP proxy in front of PostgreSQL: closing it is the database going away for the bot."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()


async def test_health_names_the_database_when_it_is_down() -> None:
    require_postgres()
    url = urlsplit(PG_URL)
    proxy = Proxy(url.hostname or "127.0.0.1", url.port or 5432)
    port = await proxy.start()
    db = PostgresDb(db_url=PG_URL.replace(url.netloc, f"{url.username}@127.0.0.1:{port}"))
    async with DevSlack(SECRET) as slack:
        _bot, server, endpoint = await start_bot(slack, registry_for(db))
        try:
            status, body = await health(endpoint)
            assert status == 200 and body["database"] == "ok"
            await proxy.close()
            await asyncio.sleep(PROBE_SECONDS)  # past the last probe's answer
            started = time.monotonic()
            status, body = await health(endpoint)
            assert status == 503 and body["down"] == ["database"], body
            assert body["slack"] == "ok" and body["database"] != "ok"
            assert time.monotonic() - started < 5  # a health check does not hang on a dead database
        finally:
            await server.cleanup()


async def test_the_public_port_says_ok_or_not_ok_and_nothing_more(fresh: Env) -> None:
    """The port Slack calls: GET /health is `ok` or `not ok`, /metrics is not there; the operations port has
    the details (the workflows, each part's state) and the metrics."""
    endpoint = fresh.slack.bot_endpoint
    base = endpoint.removesuffix("/slack/events")
    status, text = await public_health(base)
    assert (status, text) == (200, "ok")
    async with aiohttp.ClientSession() as session, session.get(base + "/metrics") as resp:
        assert resp.status == 404 and "kern_" not in await resp.text()
    status, body = await health(endpoint)
    assert status == 200 and body["database"] == "ok" and "deploy" in body["workflows"]  # type: ignore[operator]
    assert ops_of(endpoint) != base and ops_of(endpoint).startswith("http://127.0.0.1:")
    assert ("kern_bot_open_pauses", ()) in await scrape(endpoint)


async def test_health_names_the_database_when_postgres_turns_read_only() -> None:
    """The database answers reads but refuses writes (as a standby after a failover does): /health says so."""
    require_postgres()
    import asyncpg

    name = unique("kern-health")
    db = PostgresDb(db_url=PG_URL, application_name=name)
    database = urlsplit(PG_URL).path.lstrip("/")
    admin = await asyncpg.connect(PG_URL)
    async with DevSlack(SECRET) as slack:
        _bot, server, endpoint = await start_bot(slack, registry_for(db))
        try:
            status, body = await health(endpoint)
            assert status == 200 and body["database"] == "ok"
            await admin.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
            # the bot's sessions end; the ones it opens next are read-only
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", name
            )
            await asyncio.sleep(PROBE_SECONDS)
            status, body = await health(endpoint)
            assert status == 503 and body["down"] == ["database"], body
            assert "read-only" in str(body["database"]) or "within" in str(body["database"]), body
        finally:
            await admin.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')
            await admin.close()
            await server.cleanup()


# ----- /health when the database can no longer be written (a real bot process) ---------------------------
async def until_up(proc: subprocess.Popen[bytes], base: str) -> None:
    """Wait until the bot process at `base` answers GET /health (ok or not)."""
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.communicate()
        with contextlib.suppress(aiohttp.ClientError):
            await public_health(base)
            return
        assert time.monotonic() < deadline, "kern-bot serve did not come up"
        await asyncio.sleep(0.05)


def _without_root_file_access() -> None:
    """In the child, before exec: give up root's power to write files whatever their mode (CAP_DAC_OVERRIDE,
    dropped from the bounding set), as the unprivileged user of the container image runs."""
    libc = ctypes.CDLL(None, use_errno=True)
    if os.geteuid() == 0 and libc.prctl(24, 1, 0, 0, 0) != 0:  # PR_CAPBSET_DROP, CAP_DAC_OVERRIDE
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@contextlib.asynccontextmanager
async def bot_process(
    slack: DevSlack,
    db_file: Path,
    settings: dict[str, str] | None = None,
    preexec: Callable[[], None] = _without_root_file_access,
) -> AsyncIterator[tuple[subprocess.Popen[bytes], str, str]]:
    """`kern-bot serve` on `db_file` (tables made beforehand), with `settings` in its environment, `preexec`
    run in the child before exec (by default: it may not bypass file modes): (the process, its public base
    URL, its operations URL)."""
    port, ops_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "KERN_"))},
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.api_url,
        "KERN_DB": str(db_file),
        "KERN_OPS_PORT": str(ops_port),
        "KERN_HEALTH_CACHE_SECONDS": "60",
        "PYTHONPATH": str(ROOT),
        **(settings or {}),
    }
    command = [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(  # noqa: ASYNC220 (started once; the test then only talks HTTP to it)
        command,
        cwd=db_file.parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=preexec,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        await until_up(proc, base)
        yield proc, base, f"http://127.0.0.1:{ops_port}"
    finally:
        proc.terminate()
        # Its shutdown may take what `serving` allows: background work 10 s twice, in-flight requests more.
        proc.communicate(timeout=90)


async def _tables(db_file: Path) -> None:
    from bot.store.migrations import BOT
    from kern.db.sqlite import SqliteDb

    db = SqliteDb(db_file=db_file)
    await db.upgrade(BOT)
    await db.close()


async def test_health_is_not_ok_when_the_database_file_is_read_only(tmp_path: Path) -> None:
    db_file = tmp_path / "kern.db"
    await _tables(db_file)
    db_file.chmod(0o444)
    async with DevSlack(SECRET) as slack, bot_process(slack, db_file) as (_proc, base, ops):
        status, body = await health(ops)
        assert status == 503 and body["down"] == ["database"], body
        assert "readonly" in str(body["database"]) and body["slack"] == "ok"
        assert await public_health(base) == (503, "not ok")


async def test_health_is_not_ok_while_the_disk_is_full(tmp_path: Path) -> None:
    """RLIMIT_FSIZE set to 0 on the running bot: no file of it can grow or be written, as on a full disk."""
    db_file = tmp_path / "kern.db"
    await _tables(db_file)
    async with DevSlack(SECRET) as slack, bot_process(slack, db_file) as (proc, base, ops):
        assert (await health(ops))[0] == 200 and await public_health(base) == (200, "ok")
        soft, hard = resource.prlimit(proc.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (0, hard))
        await asyncio.sleep(PROBE_SECONDS)  # past the last probe's answer
        started = time.monotonic()
        status, body = await health(ops)
        assert status == 503 and body["down"] == ["database"], body
        assert time.monotonic() - started < 4  # the probe is bounded
        assert await public_health(base) == (503, "not ok")
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (soft, hard))  # room again
        await asyncio.sleep(PROBE_SECONDS)
        status, body = await health(ops)
        assert status == 200, body


# ----- JSON logs -------------------------------------------------------------------------------------
async def test_json_logs_through_the_cli(tmp_path: Path) -> None:
    """`kern-bot serve --log-format json`: every line on stderr is a JSON object; the decision's line
    carries the run and the pause it is about."""
    db_file = tmp_path / "kern.db"
    port = 3800 + os.getpid() % 100
    async with DevSlack(SECRET) as slack:
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.api_url,
            "KERN_DB": str(db_file),
            "KERN_DB_AUTO_UPGRADE": "1",
            "KERN_OPS_PORT": "0",
            "PYTHONPATH": str(ROOT),
        }
        env.pop("KERN_LOG_FORMAT", None)
        command = [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
        proc = subprocess.Popen(  # noqa: ASYNC220 (started once; the test then only talks HTTP to it)
            [*command, "--log-format", "json"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            endpoint = f"http://127.0.0.1:{port}/slack/events"
            await until_up(proc, f"http://127.0.0.1:{port}")
            slack.bot_endpoint = endpoint
            await slack.command("run deploy api")
            await slack.until(
                lambda: any("Deploy to production?" in json.dumps(m.blocks) for m in slack.messages.values())
            )
            requirement_id = slack.find(ui.CONFIRM)[1]["value"]
            await slack.click(ui.CONFIRM, user="U2")
            await slack.until(lambda: any("Deployed api" in json.dumps(m.blocks) for m in slack.messages.values()))
        finally:
            proc.terminate()
            _out, err = proc.communicate(timeout=30)
    lines = [json.loads(line) for line in err.decode().splitlines() if line.strip()]  # each line parses
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert any("serving /slack/events" in line["message"] for line in lines)
    with sqlite3.connect(db_file) as conn:
        (run_id,) = conn.execute("SELECT run_id FROM kern_runs").fetchone()
    decided = [line for line in lines if line["message"] == "pause decided by U2"]
    assert len(decided) == 1 and decided[0]["level"] == "INFO", lines
    assert (decided[0]["run_id"], decided[0]["requirement_id"]) == (run_id, requirement_id)
