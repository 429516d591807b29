"""GET /health: is this bot process able to work? Its database takes a write, and Slack accepts its token.

200 with {"ok": true, ...} when both are fine; 503 with {"ok": false, "down": [...], ...} naming what is
not, and why (on the operations port; the public port says only ok or not ok: bot/server.py). Slack is
asked (`auth.test`) at most once per `cache_seconds`, however often a load balancer or an orchestrator
checks; concurrent checks share one call to each.

The database check is a real write, because a database that still reads but can no longer write (a full
disk, a read-only file, a PostgreSQL standby) loses every click: it updates this process's row in the
table of seen requests (key `health:<host>:<pid>`, pruned with them once the process is gone), one small
transaction, at most once per PROBE_SECONDS whatever the rate of checks, and given TIMEOUT to finish.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Any

from sqlalchemy.engine import Connection

from bot.gateway import SlackCallFailed, SlackGateway
from bot.tables import seen_requests
from kern.db.base import BaseDb

TIMEOUT = 3.0  # seconds a check may take before its part counts as down
PROBE_SECONDS = 1.0  # a database probe's answer is reused this long: checks cost at most one write a second


class Down(Exception):
    """A part answered, and said no: the message is its answer (Slack's error code)."""


class Health:
    """The checks behind /health for one bot."""

    def __init__(self, db: BaseDb, gateway: SlackGateway, *, cache_seconds: float = 15.0) -> None:
        self.db = db
        self.gateway = gateway
        self.cache_seconds = cache_seconds
        self._slack: tuple[float, str | None] | None = None  # (checked at, problem or None)
        self._slack_check: asyncio.Future[str | None] | None = None
        self._db_check: asyncio.Future[str | None] | None = None
        self._db_checked_at = -PROBE_SECONDS
        self._probe_key = f"health:{socket.gethostname()[:40]}:{os.getpid()}"

    async def check(self) -> tuple[bool, dict[str, Any]]:
        """(healthy?, the body to answer with)."""
        db_problem, slack_problem = await asyncio.gather(self._database(), self._slack_status())
        problems = {"database": db_problem, "slack": slack_problem, "workspaces": self._workspaces()}
        down = [name for name, problem in problems.items() if problem]
        body: dict[str, Any] = {"ok": not down, **{k: v or "ok" for k, v in problems.items()}}
        if down:
            body["down"] = down
        return not down, body

    def _workspaces(self) -> str | None:
        """Workspaces whose token Slack refused on the bot's last call for them (revoked, uninstalled, a
        deactivated workspace): nothing reaches them until they reinstall (bot/gateway.py `unhealthy`); the
        default workspace (token mode) is named `default`."""
        refused = self.gateway.unhealthy
        return ", ".join(f"{team or 'default'}: {error}" for team, error in sorted(refused.items())) or None

    async def _database(self) -> str | None:
        # Checks in flight at once share one probe, and later ones reuse its answer for PROBE_SECONDS.
        fresh = time.monotonic() - self._db_checked_at < PROBE_SECONDS
        if self._db_check is None or (self._db_check.done() and not fresh):
            self._db_checked_at = time.monotonic()
            self._db_check = asyncio.ensure_future(_within(self._write_db()))
        return await asyncio.shield(self._db_check)

    async def _write_db(self) -> None:
        from bot.migrations import BOT

        key, now = self._probe_key, time.time()
        row = seen_requests.c.key == key

        def probe(conn: Connection) -> None:
            if conn.execute(seen_requests.update().where(row).values(seen_at=now)).rowcount == 0:
                conn.execute(seen_requests.insert().values(key=key, seen_at=now))

        await self.db.run_transaction(probe, tables=BOT)

    async def _slack_status(self) -> str | None:
        now = time.monotonic()
        if self._slack is not None and now - self._slack[0] < self.cache_seconds:
            return self._slack[1]
        if self._slack_check is None or self._slack_check.done():
            self._slack_check = asyncio.ensure_future(_within(self._auth_test()))
        problem = await asyncio.shield(self._slack_check)
        self._slack = (time.monotonic(), problem)
        return problem

    async def _auth_test(self) -> None:
        # OAuth mode has no one token to test: api.test says Slack's Web API answers.
        if self.gateway.clients.multi:
            await self.gateway.client.api_test()
            return
        try:
            await self.gateway.send("auth_test")
        except SlackCallFailed as exc:
            raise Down(exc.error) from None


async def _within(check: Any) -> str | None:
    """None if `check` completes within TIMEOUT, else what went wrong, in one line."""
    try:
        await asyncio.wait_for(check, TIMEOUT)
    except TimeoutError:
        return f"no answer within {TIMEOUT:g} s"
    except Down as exc:
        return str(exc)
    except Exception as exc:  # any failure means this part is down; say which, and why (the store's cause)
        cause = exc.__cause__ or exc.__context__
        return _line(exc) + (f" ({_line(cause)})" if isinstance(cause, Exception) else "")
    return None


def _line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__
