"""The public port's guard against slow and idle connections: a connection that does not deliver a whole
request (headers and body) within `read_seconds`, or stays idle between requests longer than
`idle_seconds`, is closed; and no more than `max_connections` are kept open at once.

Why: each open connection holds a file descriptor, and a bot process has about a thousand. Connections
that never finish their request (a slow client, or an attack: a few hundred are enough) would otherwise
hold them all, and then the bot cannot accept Slack's requests nor open its own connections to the
database and to Slack. aiohttp bounds neither the time to read a request nor the number of connections.

At the limit, a new connection closes the connection that has waited longest without a request in
progress (one still sending its request, or idle between two); a request being worked on is never cut
off. If every connection has a request in progress, the new one is closed instead.

The guard wraps the protocol of each accepted connection (`GuardedSite`), and each route's handler
(`ConnectionGuard.bounded`) tells it when a request has been read and when its answer is done.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger("kern_bot")
LOG_EVERY = 60.0  # seconds between two log lines about connections closed for being slow or too many


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Connection(asyncio.Protocol):
    """One accepted connection: aiohttp's protocol for it (`inner`), plus its deadline. One timer per
    connection, moved lazily (as aiohttp's keep-alive timer is): a request costs no timer of its own."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.deadline = 0.0  # loop time by which a request must have been read (or the connection closes)
        self.busy = False  # a request has been read and is being answered: never closed then
        self.idle = False  # answered, waiting for the next request

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.inner.connection_made(transport)
        self.guard.opened(self)

    def data_received(self, data: bytes) -> None:
        if self.idle:  # the next request begins: it has read_seconds, as the first one had
            self.idle = False
            deadline = self.guard.loop.time() + self.guard.read_seconds
            if deadline < self.deadline:
                self.deadline = deadline
                if self.timer is not None:
                    self.timer.cancel()
                self.timer = self.guard.loop.call_at(deadline, self._check)
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.closed(self)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def expire_in(self, seconds: float) -> None:
        """Close this connection unless a request has been read within `seconds`."""
        self.deadline = self.guard.loop.time() + seconds
        if self.timer is None:
            self.timer = self.guard.loop.call_at(self.deadline, self._check)

    def _check(self) -> None:
        self.timer = None
        if self.busy or self.transport is None:
            return  # re-armed when the answer is done
        if self.guard.loop.time() < self.deadline:
            self.timer = self.guard.loop.call_at(self.deadline, self._check)
        else:
            self.guard.drop(self, "slow request" if not self.idle else "idle")

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None:
            self.transport.abort()  # no lingering: the descriptor is what is scarce


class ConnectionGuard:
    """Bounds for the connections of one listening port (see the module's docstring)."""

    def __init__(self, *, max_connections: int = 512, read_seconds: float = 10.0, idle_seconds: float = 75.0) -> None:
        self.max_connections = max_connections
        self.read_seconds = read_seconds
        self.idle_seconds = idle_seconds
        self._by_transport: dict[Any, _Connection] = {}
        self._waiting: OrderedDict[_Connection, None] = OrderedDict()  # no request in progress, oldest first
        self._dropped: dict[str, int] = {}
        self._logged_at = -LOG_EVERY

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    @property
    def open(self) -> int:
        """Connections open now."""
        return len(self._by_transport)

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for `loop.create_server`: each of `factory`'s protocols, guarded."""
        return lambda: _Connection(self, factory())

    def opened(self, conn: _Connection) -> None:
        self._by_transport[conn.transport] = conn
        self._waiting[conn] = None
        conn.expire_in(self.read_seconds)
        if len(self._by_transport) > self.max_connections:
            oldest = next(iter(self._waiting))  # `conn` itself when every other one has a request in progress
            self.drop(oldest, "over the connection limit")

    def closed(self, conn: _Connection) -> None:
        self._by_transport.pop(conn.transport, None)
        self._waiting.pop(conn, None)
        conn.transport = None

    def drop(self, conn: _Connection, why: str) -> None:
        """Close `conn` now (it was too slow, or the oldest waiting one at the limit)."""
        conn.close()
        self.closed(conn)
        self._dropped[why] = self._dropped.get(why, 0) + 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY:
            self._logged_at = now
            counts = ", ".join(f"{n} ({why})" for why, n in self._dropped.items())
            log.warning("connections closed: %s; %d open", counts, len(self._by_transport))
            self._dropped.clear()

    def bounded(self, handler: Handler) -> Handler:
        """`handler`, reading the request's body under its connection's deadline, then keeping the connection
        from being closed while the request is answered; once answered, it may idle `idle_seconds`.
        (A wrapper on each route rather than a middleware: aiohttp rebuilds a middleware chain per request.)"""

        async def bounded_handler(request: web.Request) -> web.StreamResponse:
            conn = self._by_transport.get(request.transport)
            if conn is None:  # not accepted through this guard
                return await handler(request)
            if request.body_exists:
                try:
                    await request.read()  # kept by the request: the handler's own read() returns it at once
                except ConnectionError:  # closed for being too slow: nobody is left to answer
                    return web.Response(status=408)
            conn.busy = True
            self._waiting.pop(conn, None)
            try:
                return await handler(request)
            finally:
                conn.busy, conn.idle = False, True
                if conn.transport is not None:
                    self._waiting[conn] = None  # the newest waiting one: the last to be closed at the limit
                    conn.expire_in(self.idle_seconds)

        return bounded_handler


class GuardedSite(web.BaseSite):
    """A TCP site whose connections go through `guard` (aiohttp's `TCPSite`, guarded)."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard, backlog: int = 128
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host, self._port, self.guard = host, port, guard

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def port(self) -> int:
        """The port listened on (the one the system picked, for port 0)."""
        if isinstance(self._server, asyncio.Server) and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None  # the runner is set up (BaseSite checks it)
        self._server = await asyncio.get_running_loop().create_server(
            self.guard.wrap(server), self._host, self._port, backlog=self._backlog
        )
