"""Runs and continues workflows in the background and keeps Slack in step with them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot import blocks as ui
from bot.registry import BotWorkflow, Registry
from bot.store import BotStore, Card
from kern.run.base import RunStatus
from kern.run.requirement import StepRequirement
from kern.run.workflow import StepContinuedEvent, StepExecutorContinuedEvent, StepStartedEvent, WorkflowRunOutput
from kern.workflow.node import Node

log = logging.getLogger("kern_bot")
STATUS_EVERY = 0.5  # seconds between run-card status updates while steps run
QUIET = 0.002  # seconds without a new click before deferred click work starts
MAX_DEFER = 0.25  # deferred click work starts after this long however busy the endpoint is


def node_at(steps: list[Node], path: str) -> Node | None:
    """The primitive at a step path such as `2`, `2/else/0` or `3/iter/4/1`."""
    children: list[Any] = steps
    node: Any = None
    tokens = path.split("/")
    skip = False
    for token in tokens:
        if skip:
            skip = False
            continue
        if token == "iter":
            children, skip = getattr(node, "steps", []), True
            continue
        if token in ("if", "else"):
            children = getattr(node, "steps" if token == "if" else "else_steps", [])
            continue
        try:
            node = children[int(token.split("~")[0].split(".")[0])]
        except (ValueError, IndexError):
            return None
        children = getattr(node, "choices", None) or getattr(node, "steps", None) or []
    return node


class Runner:
    """Background runs and everything the bot posts about them."""

    def __init__(self, client: AsyncWebClient, registry: Registry, store: BotStore) -> None:
        self.client = client
        self.registry = registry
        self.store = store
        self.tasks: set[asyncio.Task[Any]] = set()
        self._deferred: deque[tuple[float, Callable[[], Awaitable[Any]]]] = deque()
        self._quiet_at = 0.0
        self._drainer: asyncio.Task[Any] | None = None

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run `coro` in the background, keeping a reference and logging its failure."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self.tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("background work failed", exc_info=t.exception())

        task.add_done_callback(done)
        return task

    def defer(self, work: Callable[[], Awaitable[Any]]) -> None:
        """Start `work()` in the background once clicks stop arriving (or after MAX_DEFER).

        Slack waits for a click's ack, not for its effect: while a burst of clicks is coming in, their
        acks go first and the resolutions they trigger start in a pause between requests. Without this,
        every ack in a burst of 200 waits behind the work of the clicks before it.
        """
        now = asyncio.get_running_loop().time()
        self._deferred.append((now, work))
        self._quiet_at = now + QUIET
        if self._drainer is None or self._drainer.done():
            self._drainer = self.spawn(self._drain())

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._deferred:
            queued_at, work = self._deferred[0]
            now = loop.time()
            if now < self._quiet_at and now - queued_at < MAX_DEFER:
                await asyncio.sleep(min(self._quiet_at, queued_at + MAX_DEFER) - now)
                continue
            self._deferred.popleft()
            self.spawn(work())
            await asyncio.sleep(0)  # one start per loop pass, so requests arriving meanwhile are read first

    @contextlib.asynccontextmanager
    async def pooled(self) -> AsyncIterator[None]:
        """One connection pool for every Slack call made inside (slack_sdk opens a connection per call
        otherwise); on the way out, waits for background work before closing it."""
        if self.client.session is not None:  # the caller brought its own session
            yield
            return
        self.client.session = aiohttp.ClientSession()
        try:
            yield
        finally:
            await self.idle(10)
            await self.client.session.close()
            self.client.session = None

    async def idle(self, within: float = 30.0) -> None:
        """Wait until no background work is left (tests and shutdown)."""
        deadline = time.monotonic() + within
        while self.tasks and time.monotonic() < deadline:  # the drainer is a task while work is deferred
            await asyncio.wait(list(self.tasks), timeout=max(0.0, deadline - time.monotonic()))

    async def slack(self, method: str, **kwargs: Any) -> dict[str, Any] | None:
        """Call the Web API; a failure is logged and returns None (run state lives in the db, not Slack)."""
        try:
            response = await getattr(self.client, method)(**kwargs)
            return response.data if isinstance(response.data, dict) else {}
        except SlackApiError as exc:
            data = exc.response.data if exc.response is not None else None
            log.warning("Slack %s failed: %s", method, data.get("error") if isinstance(data, dict) else exc)
        except Exception:  # a network error must not lose the run
            log.exception("Slack %s failed", method)
        return None

    async def respond(self, response_url: str, text: str, *, replace_original: bool = False) -> bool:
        """Answer through an interaction's `response_url` (ephemeral); False if Slack refused it (it works
        5 times within 30 minutes) or could not be reached."""
        try:
            webhook = AsyncWebhookClient(response_url, session=self.client.session, timeout=10)
            sent = await webhook.send(text=text, response_type="ephemeral", replace_original=replace_original)
        except Exception:  # a network error
            log.exception("response_url failed")
            return False
        if sent.status_code != 200:
            log.warning("response_url refused: %s %s", sent.status_code, sent.body)
        return sent.status_code == 200

    async def tell(
        self, channel: str, user: str, text: str, thread_ts: str | None = None, response_url: str | None = None
    ) -> None:
        """An ephemeral message only `user` sees: chat.postEphemeral, or else the interaction's
        `response_url` (which works where the bot is not in the channel)."""
        kwargs: dict[str, Any] = {"channel": channel, "user": user, "text": text}
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        if await self.slack("chat_postEphemeral", **kwargs) is None and response_url:
            await self.respond(response_url, text)

    # ----- runs ----------------------------------------------------------------------------------
    async def start(
        self, entry: BotWorkflow, text: str, user: str, channel: str, response_url: str | None = None
    ) -> str | None:
        """Post the run card, then run the workflow in the background. Returns the run id (None if the
        card could not be posted: the command's reply says why, through `response_url` if given)."""
        run_id = uuid.uuid4().hex
        card_view = ui.Card(run_id=run_id, workflow=entry.name, input=text, started_by=user)
        fallback, blocks = ui.card_blocks(card_view)
        posted = await self.slack("chat_postMessage", channel=channel, text=fallback, blocks=blocks)
        if posted is None:
            why = (
                f"I could not post in this channel, so `{entry.name}` did not start. "
                "Invite me to the channel (`/invite @kern`) and try again."
            )
            if not (response_url and await self.respond(response_url, why, replace_original=True)):
                await self.tell(channel, user, why)
            return None
        card = Card(run_id=run_id, workflow=entry.name, channel=channel, ts=posted["ts"], started_by=user, input=text)
        await self.store.save_card(card)
        events = entry.workflow.arun(
            text or None,
            run_id=run_id,
            user_id=user,
            stream=True,
            stream_events=True,
            additional_data={"slack_channel": channel, "slack_user": user},
        )
        self.spawn(self.follow(entry, card, events))  # type: ignore[arg-type]
        return run_id

    async def follow(
        self,
        entry: BotWorkflow,
        card: Card,
        events: AsyncIterator[Any],
        on_continued: Callable[[], Awaitable[None]] | None = None,
    ) -> WorkflowRunOutput:
        """Consume a run's events (status line as steps start), then present where it stopped."""
        last = 0.0
        async for event in events:
            if isinstance(event, (StepContinuedEvent, StepExecutorContinuedEvent)) and on_continued is not None:
                await on_continued()
            elif isinstance(event, StepStartedEvent) and time.monotonic() - last > STATUS_EVERY:
                last = time.monotonic()
                await self.update_card(entry, card, status=f":gear: Running {event.step_name}…")
        run = await entry.workflow.aget_run(card.run_id)
        await self.present(entry, card, run)
        return run

    async def present(self, entry: BotWorkflow, card: Card, run: WorkflowRunOutput) -> None:
        """Show where a run stopped: post its new pause in the thread, or its result on the card."""
        if run.is_paused:
            req = run.step_requirements[-1]
            if await self.store.claim_pause_post(req.requirement_id, run.run_id, card.channel):
                await self.post_pause(entry, card, req)
            await self.update_card(
                entry, card, status=f":double_vertical_bar: Waiting: {req.step_name} ({req.kind.replace('_', ' ')})"
            )
        elif run.status == RunStatus.COMPLETED:
            await self.update_card(
                entry, card, status=":white_check_mark: Completed", output=run.content, finished=True
            )
        elif run.status == RunStatus.CANCELLED:
            await self.update_card(entry, card, status=f":no_entry: Cancelled: {run.content}", finished=True)
        else:
            await self.update_card(entry, card, status=":x: Failed", error=run.error or str(run.content), finished=True)

    async def post_pause(
        self, entry: BotWorkflow, card: Card, req: StepRequirement, decided: dict[int, str] | None = None
    ) -> None:
        fallback, blocks = self.pause_view(entry, req, decided)
        posted = await self.slack(
            "chat_postMessage", channel=card.channel, thread_ts=card.ts, text=fallback, blocks=blocks
        )
        if posted is not None:
            await self.store.set_pause_ts(req.requirement_id, posted["ts"])

    def pause_view(
        self, entry: BotWorkflow, req: StepRequirement, decided: dict[int, str] | None = None
    ) -> tuple[str, ui.Blocks]:
        branches = None
        if req.step_type == "Condition":
            node = node_at(entry.workflow.steps, req.step_path)
            if node is not None:
                branches = (
                    ", ".join(s.name for s in node.steps) or "it",  # type: ignore[attr-defined]
                    ", ".join(s.name for s in node.else_steps),
                )  # type: ignore[attr-defined]
        return ui.pause_blocks(
            req, workflow=entry.name, approvers=entry.approvers.describe(), branches=branches, tool_decisions=decided
        )

    async def update_card(
        self,
        entry: BotWorkflow,
        card: Card,
        *,
        status: str,
        output: Any = None,
        error: str | None = None,
        finished: bool = False,
    ) -> None:
        view = ui.Card(
            run_id=card.run_id,
            workflow=entry.name,
            input=card.input,
            started_by=card.started_by,
            status=status,
            output=output,
            error=error,
            finished=finished,
        )
        fallback, blocks = ui.card_blocks(view)
        await self.slack("chat_update", channel=card.channel, ts=card.ts, text=fallback, blocks=blocks)

    async def close_pause(self, entry: BotWorkflow, req: StepRequirement, by: str | None, outcome: str) -> bool:
        """Mark a pause message decided (once) and replace its controls with the outcome."""
        pause = await self.store.pause(req.requirement_id)
        if pause is None or not await self.store.mark_decided(req.requirement_id, by, outcome):
            return False
        if pause.ts:
            fallback, blocks = ui.decided_blocks(req, workflow=entry.name, outcome=outcome)
            await self.slack("chat_update", channel=pause.channel, ts=pause.ts, text=fallback, blocks=blocks)
        return True
