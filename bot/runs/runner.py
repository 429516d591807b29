"""The run lifecycle: start a workflow from Slack, follow its events, and have its state shown."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from bot import blocks as ui
from bot.delivery.outbox import Outbox
from bot.delivery.presenter import Presenter, card_mark, card_view
from bot.delivery.streams import AnswerStream
from bot.registry import BotWorkflow
from bot.runs.background import CURRENT_JOB, Background
from bot.runs.turn_starts import TurnStarts
from bot.slack.gateway import SlackCallFailed, SlackGateway
from bot.slack.pacing import Budget
from bot.slack.workspaces import team
from bot.store import BotStore, Card
from kern.db.hot import Tx
from kern.exceptions import LostOwnershipError, RunCancelledWhileRunningError, StoreError
from kern.ids import new_id
from kern.run.workflow import (
    StepCompletedEvent,
    StepContinuedEvent,
    StepErrorEvent,
    StepExecutorContinuedEvent,
    StepExecutorPausedEvent,
    StepPausedEvent,
    StepStartedEvent,
    WorkflowPausedEvent,
)

log = logging.getLogger("kern_bot")

STATUS_EVERY = 0.5  # seconds between run-card status updates while steps run
STATUS_AFTER = 0.3  # seconds a step runs before the card says so (a quicker step leaves the card as it is)
# Status lines per second a process sends at most (a line waits for its turn, or is dropped if its step
# ends first). Under a burst every step waits its turn longer than STATUS_AFTER, and unbudgeted lines
# (best effort, replaced a moment later by the run's next state) cost almost as many Slack calls again
# as what the runs owe. Messages the runs owe are never held back by this.
STATUS_RATE = 5.0
STEP_ENDS = (StepCompletedEvent, StepErrorEvent, StepPausedEvent, StepExecutorPausedEvent)
# Seconds a run card's post is retried for (transient errors, a channel's turn under Slack's rate limit)
# before its person is told the run did not start.
CARD_WITHIN = 60.0
DECIDED_SOON = 0.3  # seconds after a resume by which the decided message is delivered, whatever the run does


def not_started(workflow: str, exc: SlackCallFailed) -> str:
    """What its person is told when a run card could not be posted: invite the bot only if Slack said the
    bot is not in the channel."""
    workflow = ui.escape(workflow)
    if exc.error == "not_in_channel":
        return (
            f"I could not post in this channel, so `{workflow}` did not start. "
            "Invite me to the channel (`/invite @kern`) and try again."
        )
    if exc.kind == "transient":
        return f"Slack did not take the run card in time (`{exc.error}`), so `{workflow}` did not start. Try again."
    return f"Slack refused the run card (`{exc.error}`), so `{workflow}` did not start."


def finished_after_cancel(exc: RunCancelledWhileRunningError) -> str:
    """The thread's line when a step ran on past the run's cancel: who cancelled, when, which step, and
    that what it did is recorded (its result in the run's journal, an entry in the audit log)."""
    steps = ", ".join(f"*{ui.escape(name)}*" for name in exc.steps) or "A step"
    verb = "was" if len(exc.steps) <= 1 else "were"
    return (
        f":warning: {steps} {verb} running when {ui.stamp('the run was cancelled', exc.cancelled_by, exc.cancelled_at)}"
        "; it finished after the cancel, and what it did is recorded in the run's audit log. Nothing after it ran."
    )


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
        self.status_budget = Budget(STATUS_RATE)  # shared by the status lines of every run followed here
        self.card_within = CARD_WITHIN
        # Runs whose deadline a sweep applied, being continued in the background (bot/runs/sweeper.py).
        self.continuing: set[str] = set()
        # Called after a run this process follows stops at tool calls (standing approvals, bot/approvals/grants.py).
        self.on_tool_pause: list[Callable[[BotWorkflow, Card], Awaitable[None]]] = []
        # Called by every sweep (bot/runs/sweeper.py): `@approval` records resolved elsewhere
        # (bot/approvals/elsewhere.py).
        self.on_sweep: list[Callable[[], Awaitable[None]]] = []
        self._posted: dict[str, str] = {}  # run id -> ts of a card posted whose row is not saved yet
        self.turn_starts = TurnStarts()  # conversation turns starting at once (bot/runs/turn_starts.py)

    async def start(
        self,
        entry: BotWorkflow,
        text: str,
        user: str,
        channel: str,
        response_url: str | None = None,
        *,
        value: Any = None,
        run_id: str | None = None,
        since: float | None = None,
    ) -> str | None:
        """Post the run card (showing `text`), then run the workflow on `value`, or on `text` when no value
        is given, following it until it pauses or ends. Returns the run id (None if the card could not be
        posted: the command's reply says why, through `response_url` if given).

        `run_id`, fixed by an acknowledged start (bot/runs/jobs.py), makes a start safe to run again: the
        transaction that creates the run marks the job done, and a start run again (`since`: when it was
        first accepted) reuses the card an earlier attempt posted, saved or found in the channel by the run
        id its metadata carries (Slack has no idempotent post: a process may die between the post and
        the card's row)."""
        run_id, started = run_id or new_id(), time.time()
        card = Card(run_id, entry.name, channel, ts="", started_by=user, input=text, team_id=team())
        saved = await self.store.card(run_id) if since is not None else None
        if saved is not None:
            card = saved
        else:
            ts = self._posted.get(run_id) or (await self._card_posted(channel, run_id, since) if since else None)
            if ts is None:
                fallback, blocks = ui.card_blocks(card_view(entry, card, None, started_at=started))
                try:  # its person waits for it: Slack's turns and passing errors are waited out, within a bound
                    posted = await self.gateway.send_retrying(
                        "chat_postMessage",
                        within=self.card_within,
                        channel=channel,
                        text=fallback,
                        blocks=blocks,
                        metadata=card_mark(run_id),
                    )
                except SlackCallFailed as exc:
                    log.warning("run card of %s not posted: %s", entry.name, exc)
                    why = not_started(entry.name, exc)
                    if not (response_url and await self.gateway.respond(response_url, why, replace_original=True)):
                        await self.gateway.tell(channel, user, why)
                    return None
                ts = self._posted[run_id] = posted["ts"]  # kept until saved: a retry here reuses it
            card.ts = ts
            await self.store.save_card(card)
        self._posted.pop(run_id, None)
        if response_url:  # the card is there now: the "Starting…" reply has done its job
            self.background.spawn(self.gateway.delete_reply(response_url))
        job = CURRENT_JOB.get()
        if job is not None:
            job.working_on(run_id)  # the run's creation marks its start done
        events = entry.workflow.arun(
            value if value is not None else (text or None),
            run_id=run_id,
            user_id=user,
            stream=True,
            stream_events=True,
            additional_data={"slack_channel": channel, "slack_user": user},
        )
        await self.follow(entry, card, events, started)
        return run_id

    async def converse(
        self,
        entry: BotWorkflow,
        text: str,
        user: str,
        channel: str,
        thread_ts: str,
        session_id: str,
        *,
        user_id: str | None = None,
        prompt: str | None = None,
        media: dict[str, list[Any]] | None = None,
        notice: str | None = None,
    ) -> str:
        """One turn of a conversation (`BotAgent`): run `entry` on `text` (or `prompt`, the text with what
        the agent is told besides) in kern session `session_id`, so the agent sees the thread's earlier
        turns, following it until it pauses or ends. The run's `user_id` is `user_id` (a resolved email) or
        the Slack user. Nothing is posted first: the turn's record (a card row with no message of its own)
        anchors it in `thread_ts`, where its pauses and its answer (owed through the outbox) are posted.
        `media` (`images=`, `files=`, ...: the files shared with the message) go to the agent; `notice`
        (what of them was left out) is owed in the thread with the answer (before it, when it is posted whole).
        Returns the run id."""
        starting = await self.turn_starts.enter()  # a place among the turns starting here: see turn_starts
        try:
            run_id, started = new_id(), time.time()
            card = Card(run_id, entry.name, channel, ts=thread_ts, started_by=user, input=text, team_id=team())
            await self.store.save_card(card)
            if notice:
                await self._owe_notice(run_id, notice)
            given = media or {}
            events = entry.workflow.arun(
                prompt if prompt is not None else text,
                run_id=run_id,
                session_id=session_id,
                user_id=user_id or user,
                stream=True,
                stream_events=True,
                additional_data={"slack_channel": channel, "slack_user": user, "slack_thread_ts": thread_ts},
                images=given.get("images"),
                audio=given.get("audio"),
                videos=given.get("videos"),
                files=given.get("files"),
            )
            await self.follow(entry, card, self.turn_starts.watched(events, starting), started)
        finally:
            starting.release()
        return run_id

    async def _card_posted(self, channel: str, run_id: str, since: float) -> str | None:
        """The ts of the card of `run_id` posted in `channel` since `since` (by an attempt that died before
        saving it), found in the channel by its metadata; None if there is none (or it cannot be read)."""
        try:
            return await self.presenter.find_posted({"channel": channel}, card_mark(run_id), f"{since - 5:.6f}")
        except SlackCallFailed:  # Slack did not answer: post; at worst a second card, as before the lookup
            return None

    async def follow(
        self,
        entry: BotWorkflow,
        card: Card,
        events: AsyncIterator[Any],
        started_at: float | None = None,
        *,
        streaming: bool = True,
    ) -> None:
        """Consume a run's events (a status line as steps start, the decided message as soon as the run
        continues; a conversation's answer streamed into its thread, unless `streaming` is False or the entry
        does not stream), then deliver what the run owes Slack where it stopped.

        If this process loses the run (cancelled meanwhile, or taken over), what it owes is delivered
        anyway. If the database stays unreachable mid-run, the card says so (with the error's id, never
        SQL) and the run, left RUNNING, is taken over by a sweep once its lease expires. Errors before
        the run moved (a resume refused: `RunNotPausedError`, `JournalMismatchError`, `StoreError`) are
        the caller's to report.
        """
        stream = None
        if streaming and entry.conversation and entry.streaming:  # nothing is sent before the agent writes
            stream = self.presenter.streams.open(card, entry.task_display_mode, steps=len(entry.workflow.steps) > 1)
        at_tools: list[bool] = []  # set by the drive: it stopped at tool calls
        drive = self._follow(entry, card, events, started_at, at_tools, stream)
        await self.outbox.deliver_after(card.run_id, drive)
        for hook in self.on_tool_pause if at_tools else []:
            await hook(entry, card)

    async def _follow(
        self,
        entry: BotWorkflow,
        card: Card,
        events: AsyncIterator[Any],
        started_at: float | None,
        at_tools: list[bool],
        stream: AnswerStream | None = None,
    ) -> bool | None:
        """The drive: whether the store holds where it stopped as written (`Outbox.deliver(as_written=)`),
        or None when the database stayed down (nothing to deliver now: a sweep picks the run up again)."""
        seen, stopped, tools, ended, paused = False, asyncio.Event(), False, False, False
        status = StatusLine(self.presenter, entry, card, started_at, budget=self.status_budget)
        try:
            async for event in events:
                seen = True
                paused = isinstance(event, WorkflowPausedEvent)
                if stream is not None:
                    stream.feed(event)  # buffered: the run never waits for Slack
                # stopped at tool calls: the executor's pause event, then the run's
                tools = isinstance(event, StepExecutorPausedEvent) or (tools and isinstance(event, WorkflowPausedEvent))
                if isinstance(event, (StepContinuedEvent, StepExecutorContinuedEvent)):
                    self.background.spawn(self._deliver_unless(stopped, card.run_id))
                elif isinstance(event, StepStartedEvent) and not entry.conversation:  # no card to show it on
                    status.started(event.step_name or "")
                elif isinstance(event, STEP_ENDS):
                    status.drop()
            ended = True  # the drive saved where it stopped: the store holds that state as written
        except RunCancelledWhileRunningError as exc:  # the step in flight finished after the cancel: say so
            log.info("run %s left this process: %s", card.run_id, exc)
            try:
                await self._owe_notice(card.run_id, finished_after_cancel(exc))
            except StoreError as failed:  # kern recorded the step; only the thread's line is lost
                log.warning("run %s: the line on its cancelled step is not owed: %s", card.run_id, failed)
        except LostOwnershipError as exc:  # taken over: the new owner shows it
            log.info("run %s left this process: %s", card.run_id, exc)
            if stream is not None:
                stream.abandon()
        except StoreError as exc:  # the database stayed down: the message has an id, never SQL
            job = CURRENT_JOB.get()
            if not seen or (job is not None and not job.applied()):
                # Nothing happened yet (a resume refused, a start whose run was never saved): the caller
                # tells the person, or the acknowledged job is tried again (bot/runs/jobs.py).
                raise
            log.warning("run %s stopped by a database failure: %s", card.run_id, exc)
            if stream is not None:  # the sweep that takes the run over delivers its answer
                stream.abandon()
            await status.settle()
            await self.presenter.status_line(
                entry, card, f":warning: {ui.escape(str(exc))} A sweep picks the run up again.", started_at
            )
            return None
        finally:
            stopped.set()
            await status.settle()
        if stream is not None and not stream.failed:  # what it streamed reaches Slack before the answer's end
            await (stream.park() if paused else stream.settle())
        if tools:
            at_tools.append(True)
        return ended

    async def _owe_notice(self, run_id: str, text: str) -> None:
        """Owe a line in the run's thread (delivered with what else the run owes)."""
        from bot.store.migrations import BOT

        def body(tx: Tx) -> None:
            self.outbox.owing.owe(tx, run_id, "notice", None, {"text": text})

        await self.store.db.run_hot(body, tables=BOT)

    async def _deliver_unless(self, stopped: asyncio.Event, run_id: str) -> None:
        """The decided message, soon after a resume: at once if the run is still going after DECIDED_SOON
        seconds (a long step), else with everything else the run owes where it stopped (one delivery)."""
        try:
            await asyncio.wait_for(stopped.wait(), DECIDED_SOON)
        except TimeoutError:
            await self.outbox.deliver(run_id)


class StatusLine:
    """The card's status line for the step running now: shown once the step has run for STATUS_AFTER
    seconds, at most every STATUS_EVERY seconds, best effort. A quicker step changes nothing on the card
    (no Slack call, no flicker), and the run never waits for Slack to show it. Lines are sent within the
    process's `budget` (STATUS_RATE per second): one over it waits its turn, and is dropped if its step
    ends first."""

    def __init__(
        self,
        presenter: Presenter,
        entry: BotWorkflow,
        card: Card,
        started_at: float | None,
        budget: Budget,
    ) -> None:
        self.presenter = presenter
        self.entry = entry
        self.card = card
        self.started_at = started_at  # the run's start, shown on the card
        self.budget = budget  # the process's, shared by every run's status lines
        self._due: asyncio.Task[None] | None = None  # waiting to be shown
        self._sending: set[asyncio.Task[None]] = set()
        self._last = -STATUS_EVERY

    def started(self, step_name: str) -> None:
        self.drop()
        delay = max(STATUS_AFTER, self._last + STATUS_EVERY - time.monotonic())
        self._due = asyncio.ensure_future(self._show(step_name, delay))

    def drop(self) -> None:
        """The step ended: its status line is no longer due (one being sent lands anyway)."""
        if self._due is not None:
            self._due.cancel()
            self._due = None

    async def settle(self) -> None:
        """Before the card shows the run's next state: nothing is due any more, and every status line
        being sent has landed (so none of them overwrites that state)."""
        self.drop()
        if self._sending:
            await asyncio.wait(list(self._sending))

    async def _show(self, step_name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        wait = self.budget.reserve()  # over the process's budget: wait for this line's turn
        if wait:
            try:
                await asyncio.sleep(wait)
            except asyncio.CancelledError:  # the step ended first: the line is dropped, its turn given back
                self.budget.refund()
                raise
        task = asyncio.current_task()
        assert task is not None
        self._due = None  # from here on it is being sent: not dropped, waited for
        self._sending.add(task)
        try:
            self._last = time.monotonic()
            await self.presenter.status_line(
                self.entry, self.card, f":gear: Running {ui.escape(step_name)}…", self.started_at
            )
        finally:
            self._sending.discard(task)
