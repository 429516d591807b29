"""The run lifecycle: start a workflow from Slack, follow its events, and have its state shown."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from bot import blocks as ui
from bot.background import Background
from bot.gateway import SlackGateway
from bot.outbox import Outbox
from bot.presenter import Presenter, card_view
from bot.registry import BotWorkflow
from bot.store import BotStore, Card
from kern.exceptions import LostOwnershipError, StoreError
from kern.run.workflow import (
    StepContinuedEvent,
    StepExecutorContinuedEvent,
    StepExecutorPausedEvent,
    StepStartedEvent,
    WorkflowPausedEvent,
)

log = logging.getLogger("kern_bot")
STATUS_EVERY = 0.5  # seconds between run-card status updates while steps run
DECIDED_SOON = 0.3  # seconds after a resume by which the decided message is delivered, whatever the run does


class Runner:
    """Starts runs and follows them; what they owe Slack goes through the outbox."""

    def __init__(
        self, background: Background, gateway: SlackGateway, store: BotStore, presenter: Presenter, outbox: Outbox
    ) -> None:
        self.background = background
        self.gateway = gateway
        self.store = store
        self.presenter = presenter
        self.outbox = outbox
        # Called after a run this process follows stops at tool calls (standing approvals, bot/grants.py).
        self.on_tool_pause: list[Callable[[BotWorkflow, Card], Awaitable[None]]] = []

    async def start(
        self,
        entry: BotWorkflow,
        text: str,
        user: str,
        channel: str,
        response_url: str | None = None,
        *,
        value: Any = None,
    ) -> str | None:
        """Post the run card (showing `text`), then run the workflow in the background on `value`, or on
        `text` when no value is given. Returns the run id (None if the card could not be posted: the
        command's reply says why, through `response_url` if given)."""
        run_id, started = uuid.uuid4().hex, time.time()
        card = Card(run_id=run_id, workflow=entry.name, channel=channel, ts="", started_by=user, input=text)
        fallback, blocks = ui.card_blocks(card_view(entry, card, None, started_at=started))
        posted = await self.gateway.call("chat_postMessage", channel=channel, text=fallback, blocks=blocks)
        if posted is None:
            why = (
                f"I could not post in this channel, so `{entry.name}` did not start. "
                "Invite me to the channel (`/invite @kern`) and try again."
            )
            if not (response_url and await self.gateway.respond(response_url, why, replace_original=True)):
                await self.gateway.tell(channel, user, why)
            return None
        card.ts = posted["ts"]
        await self.store.save_card(card)
        if response_url:  # the card is there now: the "Starting…" reply has done its job
            self.background.spawn(self.gateway.delete_reply(response_url))
        events = entry.workflow.arun(
            value if value is not None else (text or None),
            run_id=run_id,
            user_id=user,
            stream=True,
            stream_events=True,
            additional_data={"slack_channel": channel, "slack_user": user},
        )
        self.background.spawn(self.follow(entry, card, events, started))  # type: ignore[arg-type]
        return run_id

    async def follow(
        self, entry: BotWorkflow, card: Card, events: AsyncIterator[Any], started_at: float | None = None
    ) -> None:
        """Consume a run's events (a status line as steps start, the decided message as soon as the run
        continues), then deliver what the run owes Slack where it stopped.

        If this process loses the run (cancelled meanwhile, or taken over), what it owes is delivered
        anyway. If the database stays unreachable mid-run, the card says so (with the error's id, never
        SQL) and the run, left RUNNING, is taken over by a sweep once its lease expires. Errors before
        the run moved (a resume refused: `RunNotPausedError`, `JournalMismatchError`, `StoreError`) are
        the caller's to report.
        """
        last, seen, stopped, tools = 0.0, False, asyncio.Event(), False
        try:
            async for event in events:
                seen = True
                # stopped at tool calls: the executor's pause event, then the run's
                tools = isinstance(event, StepExecutorPausedEvent) or (tools and isinstance(event, WorkflowPausedEvent))
                if isinstance(event, (StepContinuedEvent, StepExecutorContinuedEvent)):
                    self.background.spawn(self._deliver_unless(stopped, card.run_id))
                elif isinstance(event, StepStartedEvent) and time.monotonic() - last > STATUS_EVERY:
                    last = time.monotonic()
                    await self.presenter.status_line(entry, card, f":gear: Running {event.step_name}…", started_at)
        except LostOwnershipError as exc:  # cancelled meanwhile, or taken over: the new owner shows it
            log.info("run %s left this process: %s", card.run_id, exc)
        except StoreError as exc:  # the database stayed down: the message has an id, never SQL
            if not seen:
                raise  # nothing happened yet (a resume was refused): the caller tells the person
            log.warning("run %s stopped by a database failure: %s", card.run_id, exc)
            await self.presenter.status_line(
                entry, card, f":warning: {exc} A sweep picks the run up again.", started_at
            )
            return
        finally:
            stopped.set()
        await self.outbox.deliver(card.run_id)
        for hook in self.on_tool_pause if tools else []:
            await hook(entry, card)

    async def _deliver_unless(self, stopped: asyncio.Event, run_id: str) -> None:
        """The decided message, soon after a resume: at once if the run is still going after DECIDED_SOON
        seconds (a long step), else with everything else the run owes where it stopped (one delivery)."""
        try:
            await asyncio.wait_for(stopped.wait(), DECIDED_SOON)
        except TimeoutError:
            await self.outbox.deliver(run_id)
