"""A conversation's answer, streamed into its thread as the agent writes it (Slack's chat streaming:
chat.startStream, chat.appendStream, chat.stopStream), with a task card (`task_update` chunk) for each tool
call, team member asked and workflow step.

The agent never waits for Slack. What it writes is buffered (`AnswerStream`) and sent by one task per stream,
which coalesces whatever came meanwhile into its next call: one call at a time per stream, at most every
APPEND_EVERY seconds, so a slow or rate-limited Slack (a 429 waits out its Retry-After, through the gateway's
pacing) makes the chunks later and larger, never the run slower. Each message holds at most MESSAGE_LIMIT
characters of the answer: a longer answer is stopped there and continues in a new message, as it does when
Slack ends a stream itself (`message_not_in_streaming_state`, `msg_too_long`).

Durable like the rest: each stream's message is recorded (bot/store/stream_rows.py) as soon as Slack gives its
ts, and the turn's end owes its "answer" through the outbox. Delivering it (`Streams.finish`) stops the last
stream, when this process streamed the whole answer and every chunk landed; otherwise (the process that
streamed died and the run was taken over, an append's answer was lost, the run failed) it rewrites the
streamed messages with the finished answer, stopping any still streaming. Every step of that is safe to
repeat: a stop answered `message_not_in_streaming_state` was done before, a rewrite writes the same text, and
a piece of the answer posted anew is looked for first. So the thread never keeps a half answer.

Why the three methods through the gateway rather than slack_sdk's `chat_stream` helper: the helper calls the
client directly (no pacing, no shared 429 handling, no time bound), keeps its state only in memory, and
raises on the first failed call; here the ts is recorded durably before anything more is sent, and a failed
call is told apart by its kind (wait and retry, continue in a new message, or leave it to the answer's
delivery).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from bot import blocks as ui
from bot.slack.gateway import SlackCallFailed, SlackGateway
from bot.slack.workspaces import team
from bot.store import Card
from bot.store.stream_rows import FINAL, KEPT, STOPPED, STREAMING, StreamedMessage, StreamRows
from kern.exceptions import StoreError
from kern.run.agent import RunContentEvent, ToolCallCompletedEvent, ToolCallStartedEvent
from kern.run.workflow import StepCompletedEvent, StepErrorEvent, StepStartedEvent

log = logging.getLogger("kern_bot")

ANSWER_EVENT = "kern_answer"  # the metadata event type of a conversation's answer
MESSAGE_LIMIT = 12_000  # characters of an answer per message (one markdown field holds 12,000)
MOST_MESSAGES = 8  # messages an answer takes at most; past them it is clipped
APPEND_EVERY = 0.25  # seconds between a stream's calls: what the agent writes meanwhile goes in one call
SETTLE_WITHIN = 5.0  # seconds the end of a turn waits for its stream to catch up before the answer is delivered
RETRIES = 5  # passing failures (a 5xx, no answer) in a row before a stream gives up
ENDED = frozenset({"message_not_in_streaming_state", "msg_too_long"})  # continue in a new message
GONE = frozenset({"message_not_in_streaming_state", "message_not_found"})  # a stop that has nothing to stop
DELEGATE = "delegate_task_to_member"  # a team's tool that asks one of its members (kern.team)


def answer_mark(run_id: str, part: int = 0) -> dict[str, Any]:
    """The metadata a conversation's answer (its `part`-th message, for a long one) carries, by which a retry
    finds it (`Presenter.find_posted`)."""
    payload: dict[str, Any] = {"run_id": run_id} if part == 0 else {"run_id": run_id, "part": part}
    return {"event_type": ANSWER_EVENT, "event_payload": payload}


def _cut(text: str, room: int) -> int:
    """Where to cut `text` to fit `room` characters: at its last line break or space in the last fifth of the
    room, else at the room."""
    if len(text) <= room:
        return len(text)
    for sep in ("\n", " "):
        at = text.rfind(sep, room - room // 5, room)
        if at > 0:
            return at + 1
    return room


def split_answer(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """`text` in messages of at most `limit` characters (at most MOST_MESSAGES; the last one clipped)."""
    pieces: list[str] = []
    while text and len(pieces) < MOST_MESSAGES:
        at = _cut(text, limit)
        pieces.append(text[:at])
        text = text[at:]
    if text and pieces:
        pieces[-1] = ui.clip(pieces[-1] + text, limit)
    return pieces


@dataclass
class _Sent:
    ts: str
    chars: int = 0  # characters of the answer it holds
    open: bool = True  # still streaming


@dataclass
class AnswerStream:
    """One turn's answer streaming into its thread: fed with the run's events (`feed`), sent by its own task."""

    streams: Streams
    card: Card
    display_mode: str
    team: str = field(default_factory=team)
    pending: list[dict[str, Any]] = field(default_factory=list)  # chunks not sent yet, in order
    sent: list[_Sent] = field(default_factory=list)  # its messages, oldest first
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # its task cards, as last sent or pending
    dirty: bool = False  # a call's answer was lost: the message may not show what was sent (rewritten at the end)
    failed: bool = False  # Slack refused the stream: nothing more is sent; the answer's delivery shows it all
    closing: bool = False
    steps: bool = False  # a card per workflow step (a workflow of several steps)
    first_at: float | None = None  # when the first chunk reached Slack (for the bench)
    written: str = ""  # all the text fed to it, escaped, as streamed
    _task: asyncio.Task[None] | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _last: float = 0.0  # when its last call was made
    _held: float = 0.0  # no call before then (a failure's backoff, a 429's Retry-After)

    # ----- what the run writes -------------------------------------------------------------------------
    def feed(self, event: Any) -> None:
        """Take one of the run's events: its text as it comes, a task card for each tool call (a team
        member asked) and for each step of a workflow of several steps."""
        if isinstance(event, RunContentEvent):
            if isinstance(event.content, str) and event.content and not event.nested_depth:
                self.text(event.content)
        elif isinstance(event, (ToolCallStartedEvent, ToolCallCompletedEvent)) and event.tool is not None:
            call = event.tool
            key = f"tool:{call.tool_call_id or call.tool_name}"
            title = call.tool_name
            if call.tool_name == DELEGATE:
                title = f"Asking {(call.tool_args or {}).get('member_name') or 'a member'}"
            if isinstance(event, ToolCallStartedEvent):
                self.task(key, title, "in_progress")
            else:
                self.task(key, title, "complete", output=ui.truncate(ui.escape(str(call.result or "")), 200))
        elif isinstance(event, (StepStartedEvent, StepCompletedEvent, StepErrorEvent)) and self.steps:
            name = event.step_name or "step"
            status = {StepStartedEvent: "in_progress", StepCompletedEvent: "complete"}.get(type(event), "error")
            self.task(f"step:{event.step_id or name}", name, status)

    def text(self, piece: str) -> None:
        """More of the answer (the model's text, escaped once here)."""
        escaped = ui.escape(piece)
        self.written += escaped
        if self.pending and self.pending[-1]["type"] == "markdown_text":
            self.pending[-1]["text"] += escaped
        else:
            self.pending.append({"type": "markdown_text", "text": escaped})
        self._kick()

    def task(self, key: str, title: str, status: str, output: str = "") -> None:
        """A task card's state; an update of a card not sent yet replaces it where it waits."""
        card = {"type": "task_update", "id": key[:64], "title": ui.truncate(title, 250) or "task", "status": status}
        if output:
            card["output"] = output
        self.tasks[card["id"]] = card
        for index, chunk in enumerate(self.pending):
            if chunk["type"] == "task_update" and chunk["id"] == card["id"]:
                self.pending[index] = card
                break
        else:
            self.pending.append(card)
        self._kick()

    @property
    def clean(self) -> bool:
        """Everything written reached Slack as sent, and the stream is still this process's."""
        return not (self.dirty or self.failed or self.pending)

    # ----- its end ---------------------------------------------------------------------------------------
    async def settle(self, within: float = SETTLE_WITHIN) -> bool:
        """Send what is still buffered (waiting at most `within` seconds); True if it all reached Slack. Past
        that, nothing more is sent: the answer's delivery shows it all."""
        self.closing = True
        self._wake.set()
        task = self._task
        if task is not None and not task.done():
            done, _ = await asyncio.wait([task], timeout=within)
            if not done:
                task.cancel()
                self.dirty = True
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return self.clean

    async def park(self) -> None:
        """The run paused: send what is buffered, then stop the stream (cards still running shown pending:
        they wait for people); its messages stay as they are, and the turn's answer goes on below the pause."""
        await self.settle()
        self.streams.live.pop(self.card.run_id, None)
        waiting = [{**c, "status": "pending"} for c in self.tasks.values() if c["status"] == "in_progress"]
        for message in self.sent:
            if message.open:
                with contextlib.suppress(SlackCallFailed):
                    await self.streams.stop(self.card.channel, message.ts, chunks=waiting or None)
        await self.streams.mark(self.card.run_id, [m.ts for m in self.sent], KEPT)

    def abandon(self) -> None:
        """The run left this process: nothing more is sent (its new owner delivers the answer)."""
        self.failed = True
        self.streams.live.pop(self.card.run_id, None)
        if self._task is not None:
            self._task.cancel()

    # ----- sending -----------------------------------------------------------------------------------------
    def _kick(self) -> None:
        if self.failed:
            return
        if self._task is None:
            self._task = asyncio.ensure_future(self._pump())
        self._wake.set()

    async def _pump(self) -> None:
        failures = 0
        while not self.failed:
            if not self.pending:
                if self.closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            current = self.sent[-1] if self.sent and self.sent[-1].open else None
            now = time.monotonic()
            wait = max(self._held - now, 0.0 if current is None or self.closing else self._last + APPEND_EVERY - now)
            if wait > 0:
                await asyncio.sleep(wait)  # what comes meanwhile goes in the same call
            chunks, full = self._take(MESSAGE_LIMIT - (current.chars if current else 0))
            try:
                await self._send(current, chunks)
                failures = 0
            except SlackCallFailed as exc:
                failures += exc.error not in ("ratelimited", "rate_limited")
                if not self._failed(exc, current, chunks, failures):
                    return
                continue
            except StoreError as exc:  # its message could not be recorded: streamed no further (the answer is owed)
                log.warning("stream of run %s not recorded: %s", self.card.run_id, exc)
                self.failed = self.dirty = True
                return
            if full and self.sent and self.sent[-1].open:  # this message is full: the answer goes on in a new one
                await self._continue_in_new()

    def _take(self, room: int) -> tuple[list[dict[str, Any]], bool]:
        """The pending chunks whose text fits `room` characters (the rest stays pending), and whether the
        message is then full."""
        taken: list[dict[str, Any]] = []
        while self.pending:
            chunk = self.pending[0]
            if chunk["type"] == "markdown_text":
                if room <= 0:
                    return taken, True
                at = _cut(chunk["text"], room)
                if at < len(chunk["text"]):
                    taken.append({"type": "markdown_text", "text": chunk["text"][:at]})
                    chunk["text"] = chunk["text"][at:]
                    return taken, True
                room -= at
            taken.append(self.pending.pop(0))
        return taken, False

    async def _send(self, current: _Sent | None, chunks: list[dict[str, Any]]) -> None:
        chars = sum(len(c["text"]) for c in chunks if c["type"] == "markdown_text")
        self._last = time.monotonic()
        if current is None:
            ts = await self.streams.start(self.card, self.display_mode, chunks)
            self.sent.append(_Sent(ts, chars))
            self.streams.live[self.card.run_id] = self
            await self.streams.rows.started(self.card.run_id, self.card.channel, ts, self.team)
        else:
            channel = self.card.channel
            await self.streams.gateway.send("chat_appendStream", channel=channel, ts=current.ts, chunks=chunks)
            current.chars += chars
        if self.first_at is None:
            self.first_at = time.time()

    def _failed(self, exc: SlackCallFailed, current: _Sent | None, chunks: list[dict[str, Any]], failures: int) -> bool:
        """What a failed call means for the stream; False if it streams no further."""
        if exc.error in ENDED and current is not None:  # Slack ended this message: the rest goes in a new one
            current.open = False
            self.pending[:0] = chunks
            return True
        if exc.outcome_unknown:  # it may have landed: not sent twice; the answer's delivery rewrites the message
            log.warning("stream of run %s: %s (answer lost)", self.card.run_id, exc)
            self.dirty = True
            if current is None:  # a message may have started that nobody recorded: stream no more
                self.failed = True
            return not self.failed
        limited = exc.error in ("ratelimited", "rate_limited")
        if exc.kind == "transient" and (limited or failures <= RETRIES):  # its turn had not come, or Slack failed
            self.pending[:0] = chunks  # sent later, with what comes meanwhile
            backoff = exc.retry_after if limited and exc.retry_after is not None else 0.2 * 2 ** min(failures, 5)
            self._held = time.monotonic() + max(backoff, APPEND_EVERY)
            return True
        log.warning("stream of run %s stopped: %s", self.card.run_id, exc)
        self.failed = self.dirty = True
        return False

    async def _continue_in_new(self) -> None:
        full = self.sent[-1]
        part = len(self.sent) - 1
        try:
            await self.streams.stop(self.card.channel, full.ts, metadata=answer_mark(self.card.run_id, part))
            full.open = False
            await self.streams.mark(self.card.run_id, [full.ts], STOPPED)
        except SlackCallFailed as exc:
            if exc.error not in GONE:
                self.dirty = True
            full.open = False


class Streams:
    """The answer streams of this process (`live`, by run id), and how an answer ends on Slack (`finish`)."""

    def __init__(self, gateway: SlackGateway, rows: StreamRows) -> None:
        self.gateway = gateway
        self.rows = rows
        self.live: dict[str, AnswerStream] = {}
        self._team_ids: dict[str, str] = {}  # workspace key -> its Slack team id (auth.test, once)

    def open(self, card: Card, display_mode: str, *, steps: bool = False) -> AnswerStream:
        """A new stream for the turn of `card` (nothing is sent before the run writes something); `steps`: a
        task card for each step of the workflow."""
        return AnswerStream(self, card, display_mode, steps=steps)

    async def start(self, card: Card, display_mode: str, chunks: list[dict[str, Any]]) -> str:
        """chat.startStream in the turn's thread, to the person who asked; returns its ts."""
        started = await self.gateway.send(
            "chat_startStream",
            channel=card.channel,
            thread_ts=card.ts,
            recipient_user_id=card.started_by,
            recipient_team_id=await self.team_id(),
            task_display_mode=display_mode,
            chunks=chunks,
        )
        return str(started["ts"])

    async def stop(self, channel: str, ts: str, **kwargs: Any) -> None:
        await self.gateway.send("chat_stopStream", channel=channel, ts=ts, **{k: v for k, v in kwargs.items() if v})

    async def mark(self, run_id: str, ts_list: list[str], state: str) -> None:
        try:
            await self.rows.mark(run_id, ts_list, state)
        except StoreError as exc:  # the answer's delivery rewrites what it finds streaming
            log.warning("streams of run %s not marked %s: %s", run_id, state, exc)

    async def team_id(self) -> str:
        """The Slack team id of the workspace the bot acts for (the stream's recipient team): the request's
        workspace, or in token mode the token's (auth.test, asked once)."""
        key = team()
        if key in self._team_ids:
            return self._team_ids[key]
        found = await self.gateway.call("auth_test")
        team_id = str((found or {}).get("team_id") or key)
        if found:
            self._team_ids[key] = team_id
        return team_id

    async def finish(self, run_id: str, channel: str, text: str, pieces: list[str], *, completed: bool) -> int:
        """Show the turn's finished answer `text`, split in messages as `pieces` (`split_answer(text)`), in the
        messages its stream used; returns how many of the pieces are shown (0: it streamed nothing, post the
        answer). Raises `SlackCallFailed` (the outbox tries again: every step is safe to repeat)."""
        rows = [r for r in await self.rows.of_run(run_id) if r.state != KEPT]
        if not rows:
            return 0
        if all(r.state == FINAL for r in rows):
            return len(pieces)  # shown by an earlier delivery
        live = self.live.pop(run_id, None)
        if live is not None:
            await live.settle()
        streamed_it_all = live is not None and live.written.strip() == text.strip()  # not a later step's output
        if (
            completed
            and live is not None
            and live.clean
            and streamed_it_all
            and [r.ts for r in rows] == [s.ts for s in live.sent]
        ):
            try:
                await self._stop_live(run_id, channel, live)
                await self.rows.mark(run_id, [r.ts for r in rows], FINAL)
                return len(pieces)
            except SlackCallFailed as exc:
                if exc.error not in GONE:
                    raise  # tried again by the outbox, then as a rewrite (this process's stream is gone)
                # Slack ended the stream itself (its lifetime, the person's stop): rewritten whole
        await self._rewrite(run_id, rows, pieces)
        await self.rows.mark(run_id, [r.ts for r in rows[: len(pieces)]], FINAL)
        return min(len(rows), len(pieces))

    async def _stop_live(self, run_id: str, channel: str, live: AnswerStream) -> None:
        """This process streamed the whole answer: stop its last message, cards still running shown done."""
        last = live.sent[-1]
        if not last.open:
            return  # a full message, stopped when the answer went on: it was the answer's last
        done = [{**c, "status": "complete"} for c in live.tasks.values() if c["status"] == "in_progress"]
        await self.stop(channel, last.ts, chunks=done or None, metadata=answer_mark(run_id, len(live.sent) - 1))

    async def _rewrite(self, run_id: str, rows: list[StreamedMessage], pieces: list[str]) -> None:
        """Each streamed message shows its piece of the answer (stopped first if still streaming); messages
        with no piece left are deleted."""
        for index, row in enumerate(rows):
            if row.state == STREAMING:
                try:
                    await self.stop(row.channel, row.ts)
                except SlackCallFailed as exc:
                    if exc.error not in GONE:
                        raise
            if index < len(pieces):
                await self.gateway.send(
                    "chat_update",
                    channel=row.channel,
                    ts=row.ts,
                    text=pieces[index],
                    metadata=answer_mark(run_id, index),
                )
            else:
                try:
                    await self.gateway.send("chat_delete", channel=row.channel, ts=row.ts)
                except SlackCallFailed as exc:
                    if exc.error != "message_not_found":
                        raise
                await self.rows.mark(run_id, [row.ts], FINAL)
