"""Builds the Bolt AsyncApp and wires the bot's parts and listeners; nothing else."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_sdk.http_retry.builtin_async_handlers import async_default_handlers
from slack_sdk.web.async_client import AsyncWebClient

from bot import blocks as ui
from bot.approvals.access import Access
from bot.delivery.outbox import Outbox
from bot.delivery.presenter import Presenter
from bot.registry import Registry
from bot.runs.background import Background
from bot.runs.jobs import GIVE_UP, Jobs
from bot.runs.runner import Runner
from bot.slack import acknowledged
from bot.slack.dedupe import SeenRequests, gate_requests
from bot.slack.gateway import CALL_TIMEOUT, SlackGateway
from bot.slack.workspaces import TeamClients, current_team
from bot.store import BotStore
from bot.store.assistant_threads import AssistantThreads
from bot.store.metrics import Metrics
from bot.surfaces.assistant import AssistantPane
from bot.surfaces.commands import Commands
from bot.surfaces.conversation import Conversations
from bot.surfaces.handover import Handovers
from bot.surfaces.home import Home
from bot.surfaces.interactions import Interactions
from bot.surfaces.modals import Modals
from bot.surfaces.start_forms import StartForms
from bot.surfaces.tool_calls import ToolCalls
from bot.surfaces.welcome import Welcome


@dataclass
class KernBot:
    app: AsyncApp
    runner: Runner
    registry: Registry
    store: BotStore
    gateway: SlackGateway
    background: Background
    outbox: Outbox
    interactions: Interactions
    commands: Commands
    signing_secret: str | None = None
    tool_calls: ToolCalls | None = None
    home: Home | None = None
    modals: Modals | None = None
    handovers: Handovers | None = None
    metrics: Metrics = field(default_factory=Metrics)
    jobs: Jobs | None = None


def make_client(token: str | None, api_url: str | None = None) -> AsyncWebClient:
    """A Web API client that retries connection errors (no token: OAuth mode's base client, which exchanges
    install codes; each workspace's client is made from it, `bot.slack.workspaces`). A 429 is not slept on here: it
    comes back to the gateway, which holds back just that method (or channel) for its Retry-After
    (bot/slack/pacing.py), so one rate-limited call delays nothing unrelated."""
    kwargs: dict[str, Any] = {"base_url": api_url} if api_url else {}
    return AsyncWebClient(token=token, retry_handlers=async_default_handlers(), timeout=int(CALL_TIMEOUT), **kwargs)


def build_bot(
    registry: Registry,
    client: AsyncWebClient,
    signing_secret: str | None,
    *,
    command: str = "/kern",
    clients: TeamClients | None = None,
    oauth_flow: AsyncOAuthFlow | None = None,
    give_up: float = GIVE_UP,
    ops_channel: str | None = None,
) -> KernBot:
    """The bot, in token mode (`client` carries the bot token) or, with `clients` and `oauth_flow`
    (bot/slack/oauth.py), in OAuth mode: each workspace's requests are authorized by its installation and
    answered with its token. Acknowledged clicks and starts are retried for `give_up` seconds
    (bot/runs/jobs.py). `ops_channel`: where messages Slack refused for good are told (else each run's
    starter, by DM)."""
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret or "socket-mode",
        process_before_response=True,  # listeners ack first and spawn their work; no 10 ms ack polling
        request_verification_enabled=bool(signing_secret),
        oauth_flow=oauth_flow,
    )
    teams = clients or TeamClients(client)
    if teams.multi:  # token mode: every request is for team '' (the default), no middleware needed

        @app.middleware
        async def for_team(context: AsyncBoltContext, next: Callable[[], Awaitable[Any]]) -> Any:
            """Each request's work (and what it spawns) is for the workspace the request came from. Set,
            not reset: Bolt runs the listener after the middleware returns, in this same task (each request
            has a task of its own, as for `bot.runs.background.REQUEST_GATE`)."""
            current_team.set(teams.key(context.enterprise_id, context.team_id, context.is_enterprise_install))
            return await next()

    if oauth_flow is not None:
        app.enable_token_revocation_listeners()  # app_uninstalled, tokens_revoked: the installation goes
    background = Background()
    gateway = SlackGateway(client, teams)
    store = BotStore(registry.db)
    presenter = Presenter(gateway, registry, store)
    outbox = Outbox(store, presenter, registry, ops_channel=ops_channel)
    runner = Runner(background, gateway, store, presenter, outbox)
    jobs = Jobs(registry.db, background, give_up=give_up)
    acknowledged.register(jobs, app, runner, registry, gateway, teams)
    access = Access(gateway, registry.db)
    metrics = Metrics()
    interactions = Interactions(runner, registry, store, gateway, background, access, presenter, metrics)
    modals = Modals(interactions)
    tool_calls = ToolCalls(interactions, modals)
    handovers = Handovers(interactions, modals)
    start_forms = StartForms(runner, registry, gateway, background, access)
    commands = Commands(runner, registry, store, gateway, background, access, start_forms, jobs)
    home = Home(registry, store, presenter, access, gateway, background)
    outbox.listeners.append(home.on_delivered)
    interactions.on_stale_view = home.republish
    gate_requests(app, SeenRequests(registry.db))  # first, so every listener's work is gated
    app.command(command)(commands.on_command)
    app.shortcut(ui.RUN_SHORTCUT)(start_forms.on_shortcut)
    talker = registry.conversational
    conversations = Conversations(talker, runner, gateway, background, access) if talker is not None else None
    if conversations is not None:  # after the gate: its listeners' work runs once per event
        app.assistant(AssistantPane(conversations, AssistantThreads(registry.db), gateway, background).bolt())
    welcome = Welcome(registry, gateway, background, command, conversations)
    app.event("member_joined_channel")(welcome.on_member_joined)
    app.event("message")(welcome.on_message)  # a hint for one that reads like a command without its slash
    app.event("app_mention")(welcome.on_mention)
    # Bolt calls each listener with the arguments it names (ack, body, action, view...).
    actions: dict[str, Callable[..., Awaitable[None]]] = {
        **{action_id: interactions.button(action_id) for action_id in (ui.CONFIRM, ui.REJECT, ui.RETRY, ui.SKIP)},
        ui.ROUTE_PICK: interactions.on_route_pick,
        ui.ROUTE_GO: interactions.on_route_go,
        ui.OPEN_INPUT: modals.on_open_input,
        ui.OPEN_EDIT: modals.on_open_edit,
        ui.OPEN_FEEDBACK: modals.on_open_feedback,
        ui.OPEN_APPROVE: modals.on_open_approve,
        ui.VIEW_FULL: modals.on_view_full,
        ui.TOOL_OK: tool_calls.on_tool_ok,
        ui.TOOL_NO: tool_calls.on_tool_no,
        ui.TOOL_INPUT: tool_calls.on_tool_input,
        ui.TOOL_RESULT: tool_calls.on_tool_result,
        ui.TOOL_ANSWER: tool_calls.on_tool_answer,
        ui.RUN_STATUS: commands.on_run_status,
        ui.RUN_CANCEL: commands.on_run_cancel,
        ui.HANDOVER: handovers.on_open,
        ui.TOOL_ALLOW_RUN: tool_calls.on_allow_run,
        ui.TOOL_ALLOW_WORKFLOW: tool_calls.on_allow_workflow,
        ui.HOME_PAGE: home.on_page,
        ui.GRANT_REVOKE: home.on_revoke,
    }
    # Tool-call buttons carry their call index (kern:tool_ok:2); on the App Home every button also
    # carries its place on the page (kern:confirm:3, kern:tool_ok:2:3), telling the pauses there apart.
    for action_id, handler in actions.items():
        app.action(re.compile(f"^{re.escape(action_id)}(:\\d+){{0,2}}$"))(handler)
    app.event("app_home_opened")(home.on_home_opened)
    views: dict[str, Callable[..., Awaitable[None]]] = {
        ui.V_INPUT: modals.on_submit_input,
        ui.V_EDIT: modals.on_submit_edit,
        ui.V_FEEDBACK: modals.on_submit_feedback,
        ui.V_APPROVE: modals.on_submit_approve,
        ui.V_TOOL_NOTE: tool_calls.on_submit_tool_note,
        ui.V_TOOL_INPUT: tool_calls.on_submit_tool_input,
        ui.V_TOOL_RESULT: tool_calls.on_submit_tool_result,
        ui.V_TOOL_FEEDBACK: tool_calls.on_submit_tool_feedback,
        ui.V_HANDOVER: handovers.on_submit,
        ui.V_START_PICK: start_forms.on_submit_pick,
        ui.V_START: start_forms.on_submit_start,
    }
    for callback_id, handler in views.items():
        app.view_submission(callback_id)(handler)
    return KernBot(
        app,
        runner,
        registry,
        store,
        gateway,
        background,
        outbox,
        interactions,
        commands,
        signing_secret,
        tool_calls=tool_calls,
        home=home,
        modals=modals,
        handovers=handovers,
        metrics=metrics,
        jobs=jobs,
    )
