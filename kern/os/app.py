"""AgentOS: serve agents, teams and workflows over HTTP, with the routes that start runs, continue paused
ones and resolve approval records (the reference's AgentOS human-in-the-loop routes), on aiohttp."""

from __future__ import annotations

import importlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from kern.agent import Agent
from kern.db.base import BaseDb
from kern.os.approvals import Approvals
from kern.os.http import HTTPError, error_response, json_response
from kern.os.runs import continue_agent_route, continue_workflow_route, start_route
from kern.team import Team
from kern.workflow import Workflow

log = logging.getLogger("kern.os")

# The reference's arguments kern's AgentOS does not implement: refused (NotImplementedError) when given
# anything but their default, so a setting never silently does nothing. Name -> (default, why).
_UNSUPPORTED: dict[str, tuple[Any, str]] = {
    "checkpoint": (None, "kern persists a run at every pause and tool round; there are no checkpoint levels"),
    "knowledge": (None, "kern has no knowledge bases"),
    "interfaces": (None, "kern's AgentOS serves only its HTTP routes (kern-bot is kern's Slack interface)"),
    "a2a_interface": (False, "kern has no A2A server"),
    "authorization": (False, "kern's AgentOS has no authentication: put it behind your own (it binds to 127.0.0.1)"),
    "authorization_config": (None, "kern's AgentOS has no authentication"),
    "cors_allowed_origins": (None, "kern's AgentOS sets no CORS headers"),
    "config": (None, "kern's AgentOS has no configuration file"),
    "settings": (None, "kern's AgentOS has no API settings (no security key)"),
    "lifespan": (None, "the app is aiohttp's: add startup/cleanup hooks to get_app()'s on_startup/on_cleanup"),
    "mcp_server": (False, "kern has no MCP server"),
    "mcp_auth": (None, "kern has no MCP server"),
    "base_app": (None, "kern's app is aiohttp's, not FastAPI's: add routes to get_app()'s router"),
    "tracing": (False, "kern has no tracing export"),
    "registry": (None, "kern has no component registry"),
    "scheduler": (False, "kern has no scheduler"),
    "scheduler_base_url": (None, "kern has no scheduler"),
    "internal_service_token": (None, "kern has no scheduler"),
    "enable_mcp_server": (None, "kern has no MCP server"),
    "mcp_config": (None, "kern has no MCP server"),
}


class AgentOS:
    """Serve agents, teams and workflows over HTTP: `app = AgentOS(agents=[...]).get_app()`, then
    `agent_os.serve(app=app, port=7777)`.

    Routes (non-streamed answers are the run's `to_dict()`; `stream=true`, the default, answers with
    server-sent events):

    - `POST /agents/{id}/runs`, `/teams/{id}/runs`, `/workflows/{id}/runs` (form: `message`, `stream`,
      `session_id`, `user_id`)
    - `POST /agents/{id}/runs/{run_id}/continue` (form: `tools`, the paused tool calls decided, as JSON;
      `session_id`), `/teams/.../continue` (`requirements`), `/workflows/.../continue` (`step_requirements`)
    - `GET /approvals`, `/approvals/count`, `/approvals/{id}`, `/approvals/{id}/status`,
      `POST /approvals/{id}/resolve` (JSON: `status`, `resolved_by`, `resolution_data`)
    - `GET /health`

    There is no authentication: `serve` binds to 127.0.0.1 unless told otherwise. `db` is the store the
    approval routes read first (then each component's own). `telemetry`, `auto_provision_dbs`,
    `run_hooks_in_background` and `on_route_conflict` have no meaning in kern and are accepted unused;
    the reference's other options (authorization, MCP, interfaces, ...) are refused unless left at their
    defaults (docs/differences.md).
    """

    def __init__(
        self,
        id: str | None = None,
        name: str | None = None,
        description: str | None = None,
        version: str | None = None,
        db: BaseDb | None = None,
        checkpoint: str | None = None,
        agents: Sequence[Agent] | None = None,
        teams: Sequence[Team] | None = None,
        workflows: Sequence[Workflow] | None = None,
        knowledge: Sequence[Any] | None = None,
        interfaces: Sequence[Any] | None = None,
        a2a_interface: bool = False,
        authorization: bool = False,
        authorization_config: Any = None,
        cors_allowed_origins: Sequence[str] | None = None,
        config: Any = None,
        settings: Any = None,
        lifespan: Any = None,
        mcp_server: Any = False,
        mcp_auth: Any = None,
        base_app: Any = None,
        on_route_conflict: str = "preserve_agentos",
        tracing: bool = False,
        auto_provision_dbs: bool = True,
        run_hooks_in_background: bool = False,
        telemetry: bool = True,
        registry: Any = None,
        scheduler: bool = False,
        scheduler_poll_interval: int = 15,
        scheduler_base_url: str | None = None,
        internal_service_token: str | None = None,
        enable_mcp_server: bool | None = None,
        mcp_config: Any = None,
    ) -> None:
        given = dict(locals())
        for arg, (default, why) in _UNSUPPORTED.items():
            if given[arg] != default:
                raise NotImplementedError(f"AgentOS({arg}=...) is not supported by kern: {why}.")
        if on_route_conflict not in ("preserve_agentos", "preserve_base_app", "error"):
            raise ValueError(
                f"on_route_conflict must be preserve_agentos, preserve_base_app or error: {on_route_conflict!r}"
            )
        self.id = id or "kern-os"
        self.name = name
        self.description = description
        self.version = version
        self.db = db
        self.agents = list(agents or [])
        self.teams = list(teams or [])
        self.workflows = list(workflows or [])
        for label, items, cls in (
            ("agents", self.agents, Agent),
            ("teams", self.teams, Team),
            ("workflows", self.workflows, Workflow),
        ):
            wrong = [type(i).__name__ for i in items if not isinstance(i, cls)]
            if wrong:
                raise TypeError(f"AgentOS({label}=...) takes {cls.__name__} objects, got {', '.join(wrong)}")
        # No meaning in kern (docs/differences.md): kept only so the object says what it was given.
        self.telemetry = telemetry
        self.auto_provision_dbs = auto_provision_dbs
        self.run_hooks_in_background = run_hooks_in_background
        self.on_route_conflict = on_route_conflict
        self.scheduler_poll_interval = scheduler_poll_interval
        self._by_kind: dict[str, dict[str, Any]] = {}
        for label, items in (("agents", self.agents), ("teams", self.teams), ("workflows", self.workflows)):
            ids: dict[str, Any] = {}
            for item in items:
                if item.id in ids:
                    raise ValueError(f"AgentOS: two {label} have the id {item.id!r}; ids must be unique")
                ids[item.id] = item
            self._by_kind[label] = ids
        self._app: web.Application | None = None
        self.started_at = int(time.time())

    def _stores(self) -> list[BaseDb]:
        stores: list[BaseDb] = []
        components: list[Agent | Workflow] = [*self.agents, *self.teams, *self.workflows]
        for store in [self.db, *(c.db for c in components)]:
            if store is not None and all(store is not s for s in stores):
                stores.append(store)
        return stores

    def get_app(self) -> web.Application:
        """The aiohttp application with AgentOS's routes (built once; later calls return the same one)."""
        if self._app is not None:
            return self._app
        app = web.Application(middlewares=[_errors])
        approvals = Approvals(self._stores())
        agents, teams, workflows = self._by_kind["agents"], self._by_kind["teams"], self._by_kind["workflows"]
        app.add_routes(
            [
                web.get("/health", self._health),
                web.post("/agents/{component_id}/runs", start_route("Agent", agents)),
                web.post("/teams/{component_id}/runs", start_route("Team", teams)),
                web.post("/workflows/{component_id}/runs", start_route("Workflow", workflows)),
                web.post("/agents/{component_id}/runs/{run_id}/continue", continue_agent_route("Agent", agents)),
                web.post("/teams/{component_id}/runs/{run_id}/continue", continue_agent_route("Team", teams)),
                web.post("/workflows/{component_id}/runs/{run_id}/continue", continue_workflow_route(workflows)),
                web.get("/approvals", approvals.list_records),
                web.get("/approvals/count", approvals.count),
                web.get("/approvals/{approval_id}/status", approvals.status),
                web.get("/approvals/{approval_id}", approvals.get),
                web.post("/approvals/{approval_id}/resolve", approvals.resolve),
            ]
        )
        self._app = app
        return app

    async def _health(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok", "instantiated_at": self.started_at})

    def serve(
        self,
        app: web.Application | str,
        *,
        host: str = "127.0.0.1",
        port: int = 7777,
        reload: bool = False,
        reload_includes: Sequence[str] | None = None,
        reload_excludes: Sequence[str] | None = None,
        workers: int | None = None,
        access_log: bool = False,
    ) -> None:
        """Serve `app` (or "module:attribute" naming it) until interrupted (blocking). `AGENT_OS_HOST` and
        `AGENT_OS_PORT` override `host` and `port`. `reload` has no effect (kern does not restart on code
        changes; a warning says so); `workers` must be 1 or None."""
        if workers not in (None, 1):
            raise NotImplementedError("AgentOS.serve(workers=...) is not supported by kern: it serves one process")
        if reload or reload_includes or reload_excludes:
            log.warning("AgentOS.serve(reload=...) has no effect in kern: restart the process to pick up changes")
        if isinstance(app, str):
            module, _, attribute = app.partition(":")
            app = getattr(importlib.import_module(module), attribute or "app")
        if not isinstance(app, web.Application):
            raise TypeError(f"AgentOS.serve(app=...) takes the app get_app() returns, got {type(app).__name__}")
        host = os.environ.get("AGENT_OS_HOST", host)
        port = int(os.environ.get("AGENT_OS_PORT", port))
        web.run_app(app, host=host, port=port, access_log=log if access_log else None, print=None)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except HTTPError as error:
        return error_response(error)
