"""The outbox: every message the bot owes Slack is a row written in the transaction that makes it owed,
then delivered until Slack accepts it.

kern calls `Outbox.record` inside each transaction that changes a run's status (`BaseDb.watch`): a
pause owes its pause message and a card update, a decision owes the decided form of its pause message,
an end owes the final card. A Slack error or a crash between the commit and the send loses nothing:
the row stays pending and is delivered by `deliver` (right after the change, and by every sweep of
every bot process). Delivery claims a row for a while first, so two processes do not send it twice, and
renders from the run as stored, so a repeated send shows the same thing. A pause message is posted once:
its ts is recorded in the same transaction that marks the row done, and it carries message metadata naming
the pause, so a retry after an attempt whose outcome is unknown (no answer, a process that died before
that commit) finds it in Slack and adopts it instead of posting it again (Slack offers no idempotency key
for chat.postMessage).

Slack's errors are told apart (bot/slack/errors.py): a passing one leaves the row for later (backoff, never
before Retry-After; a rate limit still running defers the row without an attempt); one Slack would repeat
marks the row failed and owes a notice to a person; a refused token waits for the workspace to come back.
A sweep delivers each run's rows on its own, so one run waiting on Slack holds back no other.

What happens to an open pause before it is decided (a vote counted, a hand-over, a tool call decided while
others wait) owes a redraw of its message and copies, written in the transaction that records it
(`Outbox.owing`, a `bot.store.outbox_rows.Owing`), and handed to delivery like the rest (`deliver`): a
crash after that commit loses no tally.

A workflow with notify="dm" also owes a DM copy of each pause per recipient, and its decided form: one
row each, retried on its own, so a Slack error on one copy delays neither the others nor the run's
other messages.

Reminders and escalations are "remind" rows (owed by bot/runs/timers.py in the timer's transaction), drawn
when delivered and dropped then if their pause was decided meanwhile; a decision of a pause with timers
owes a "close_remind" row that redraws the reminders posted as decided. An end owes an "outcome" row: the
line telling the run's starter how it ended (and one by DM, for a workflow that notifies by DM). A turn of a
conversation (`BotAgent`) has no run card: its end owes an "answer" row, posted in the conversation's thread
(found there by its metadata before a retry posts it again), or, where the answer streamed, stopping or
rewriting the messages it streamed into (bot/delivery/streams.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from bot import blocks as ui
from bot import notify
from bot.delivery.presenter import RETRY_SOON, NotYet, Presenter, RunView
from bot.registry import BotWorkflow, Registry
from bot.slack.gateway import SlackCallFailed
from bot.slack.workspaces import acting_for
from bot.store import BotStore, Delivery, OwedMessage, PauseMessage, approval_rows, timer_rows
from bot.store.outbox_rows import Owing
from kern.db.base import RunChange
from kern.db.hot import Tx

log = logging.getLogger("kern_bot")
MAX_BACKOFF = 300.0
SWEEP_RUNS = 16  # runs a sweep delivers to at once
ENDED = frozenset({"COMPLETED", "CANCELLED", "ERROR"})
COPIES = frozenset({"dm", "close_dm"})  # one row per DM copy: each is retried on its own
# Rows retried on their own, the run's later ones going on meanwhile: DM copies, and card updates (each
# shows the run as it is when sent, so a late one shows the same as an on-time one, and a rate-limited
# chat.update holds back no pause message).
# Reminders and what closes them, and the line telling a run's starter how it ended, likewise: each shows the
# run as it is when sent, and a reminder's Slack error must not hold back the decision that came after it.
ALONE = COPIES | {"card", "redraw", "remind", "close_remind", "outcome", "files"}
WAIT_ALONE = COPIES | {"close_remind"}  # kinds that wait alone for a message still owed (`NotYet`)
TOLD = frozenset({"notice", "remind", "close_remind", "outcome"})  # lines to people: one refused is only recorded
# What each kind of row shows, for the notice that says Slack refused it.
SHOWS = {
    "pause": "the pause message",
    "card": "an update of the run card",
    "close": "the decided form of a pause message",
    "dm": "a DM copy of a pause message",
    "close_dm": "the decided form of a DM copy",
    "redraw": "an update of a pause message",
    "remind": "a reminder",
    "close_remind": "the decided form of a reminder",
    "outcome": "the line telling the run's starter how it ended",
    "answer": "the answer in a conversation",
    "files": "the files made in a conversation",
}


def owed_for(change: RunChange, entry: BotWorkflow) -> list[tuple[str, str | None, dict[str, Any] | None]]:
    """The messages `change` owes Slack, as (kind, requirement id, detail), in the order they are sent: a
    decision owes the decided form of its pause message (and of each DM copy, and of the reminders posted
    about it, where the step has timers); a pause owes a card update and its message (and a DM copy to each
    recipient); an end owes the final card and the line that tells the run's starter how it ended, in the
    card's thread (and by DM, for a workflow that notifies by DM)."""
    owed: list[tuple[str, str | None, dict[str, Any] | None]] = []
    recipients = notify.dm_recipients(entry.notify, entry.approvers)
    for resolution in change.resolutions:
        if resolution.requirement_id:
            detail = {
                "decision": resolution.decision,
                "by": resolution.resolved_by,
                "at": resolution.resolved_at,
                "status": resolution.status,
                "note": resolution.note,  # a comment with an approval, a rejection's reason (kern's audit note)
            }
            owed.append(("close", resolution.requirement_id, detail))
            owed.extend(("close_dm", resolution.requirement_id, {**detail, "to": to}) for to in recipients)
            if entry.has_timers:
                owed.append(("close_remind", resolution.requirement_id, detail))
    if entry.conversation:  # a turn of a conversation: no run card; its end owes the answer in the thread
        if change.status == "PAUSED" and change.requirement_id:
            owed.append(("pause", change.requirement_id, None))
            owed.extend(("dm", change.requirement_id, {"to": to}) for to in recipients)
        elif change.status in ENDED:
            owed.append(("answer", None, {"status": change.status}))
            if (
                change.status == "COMPLETED"
            ):  # files its tools made, uploaded after the answer (bot/delivery/uploads.py)
                owed.append(("files", None, None))
        return owed
    if change.status == "PAUSED" and change.requirement_id:
        # The card first: the pause message is then the batch's last, recorded with the rest in one transaction.
        owed.append(("card", None, None))
        owed.append(("pause", change.requirement_id, None))
        owed.extend(("dm", change.requirement_id, {"to": to}) for to in recipients)
    elif change.status in ENDED:
        owed.append(("card", None, None))
        owed.append(("outcome", None, {"status": change.status}))
        if entry.notify == "dm":
            owed.append(("outcome", None, {"status": change.status, "dm": True}))
    return owed


def backoff(attempts: int, retry_after: float | None = None, first: float = 1.0) -> float:
    """Seconds to wait before the next attempt: doubling from `first` with jitter, capped at 5 minutes,
    never sooner than Slack's Retry-After."""
    delay = min(MAX_BACKOFF, first * 2.0**attempts) * (0.5 + random.random() / 2)
    return max(delay, retry_after or 0.0)


class Outbox:
    """Records what is owed (inside kern's transactions) and delivers it.

    A message being sent is held by its process for the store's `lease_seconds` (as a running run is):
    if the process dies meanwhile, another one sends it after that. `first_retry` is the first backoff.
    """

    def __init__(
        self,
        store: BotStore,
        presenter: Presenter,
        registry: Registry,
        first_retry: float = 1.0,
        ops_channel: str | None = None,
    ) -> None:
        self.first_retry = first_retry
        self.ops_channel = ops_channel  # where refused messages are told (None: to each run's starter)
        self.hold = registry.db.lease_seconds
        self.me = uuid.uuid4().hex  # this process, as the holder of the messages its transactions owe
        self.store = store
        self.presenter = presenter
        self.registry = registry
        self._entries = {entry.workflow.name: entry for entry in registry.entries.values()}
        # Entries with `@approval` tools (type "required"): only their decisions look for approval rows to drop.
        self._with_approvals = {entry.name for entry in registry.entries.values() if entry.waits_on_approvals}
        # Called with each batch delivered for a run (e.g. to refresh the App Home); must not block.
        self.listeners: list[Callable[[RunView, list[Delivery]], None]] = []
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # Runs whose messages this process is about to deliver itself (`deliver_after`): sweeps leave them be.
        self._in_flight: Counter[str] = Counter()
        self._sweeping = asyncio.Semaphore(SWEEP_RUNS)
        # How a change recorded in this process owes a message it then delivers itself (`deliver(run_id)`).
        self.owing = Owing(store, self.me, self.hold)
        self._swept: Counter[str] = Counter()  # runs a sweep is delivering right now
        registry.db.watch(self.record)

    async def deliver_after(self, run_id: str, drive: Awaitable[bool | None]) -> None:
        """Await `drive` (the run `run_id` moving in this process, whose transactions owe what it changes
        to this process), then deliver what the run owes as `deliver(run_id, as_written=...)` with what
        `drive` returned; nothing if it returned None. Meanwhile a sweep (`deliver()`) does not claim this
        process's messages of that run: without that, a sweep during a burst re-claimed every message still
        on its way, one UPDATE each, to send none."""
        self._in_flight[run_id] += 1
        try:
            as_written = await drive
            if as_written is not None:
                await self.deliver(run_id, as_written=as_written)
        finally:
            self._in_flight[run_id] -= 1
            if not self._in_flight[run_id]:
                del self._in_flight[run_id]

    def record(self, conn: Tx, change: RunChange) -> None:
        """kern's watcher: runs inside the transaction of `change`, so the rows commit with it (`conn` is
        that transaction, on the bare driver connection: write through the store's prepared statements)."""
        entry = self._entries.get(change.workflow_name or "")
        if entry is None:
            return
        now = time.time()
        for resolution in change.resolutions if entry.has_timers else ():  # a decided pause: its timers end
            if resolution.requirement_id:
                timer_rows.cancel(conn, self.store.db, resolution.requirement_id, now)
        if entry.name in self._with_approvals:  # its decided pauses and ended runs wait on no approval record
            for resolution in change.resolutions:
                if resolution.requirement_id:
                    approval_rows.forget_pause(conn, self.store.db, resolution.requirement_id)
            if change.status in ENDED:
                approval_rows.forget_run(conn, self.store.db, change.run_id)
        if change.status == "PAUSED" and change.requirement_id:
            # Known from now on, so a click on its message is understood even before its ts is recorded.
            self.store.expect_pause(conn, change.run_id, change.requirement_id)
            if change.approvals:  # `@approval` records it waits on: a sweep notices one resolved elsewhere
                approval_rows.watch(conn, self.store.db, change.run_id, change.requirement_id, change.approvals)
            timer_rows.schedule(
                conn, self.store.db, entry.approvers_for(change.step_name), change.run_id, change.requirement_id, now
            )
        self.store.owe_all(conn, change.run_id, owed_for(change, entry), holder=self.me, hold=self.hold)

    async def deliver(self, run_id: str | None = None, *, as_written: bool = False) -> int:
        """Send what is due; returns how many were delivered.

        With `run_id` (right after this process changed that run): what this process's own transactions
        owe for it, which it holds from the start, so finding them is a read (`as_written`: for a drive
        that has just ended here, the run is shown as it saved it, see `Presenter.load`). Without (a
        sweep): whatever is due and held by nobody, or by a process whose hold expired, claimed first.
        Messages of one run go in the order they were owed, one delivery at a time per run; a passing failure
        leaves that one and the run's later ones for a later attempt (with backoff, honouring Retry-After),
        except a card update or a DM copy, which waits alone; a message Slack refused for good is recorded as
        failed and told (`_give_up`), and the others go on.
        """
        if run_id is not None:
            async with self._locks[run_id]:
                done = await self._deliver_run(run_id, await self.store.held(run_id, self.me), as_written)
                if done:
                    await self.store.delivered(done)
            self._forget_lock(run_id)
            return sum(1 for d in done if not d.dropped)
        # This process's own messages of runs it is delivering right now are left to that delivery (an earlier
        # sweep's still waiting on Slack, or a drive's).
        busy = [*self._in_flight, *self._swept]
        messages = await self.store.claim_owed(None, hold=self.hold, holder=self.me, skip_runs=busy)
        by_run: dict[str, list[OwedMessage]] = {}
        for message in messages:
            by_run.setdefault(message.run_id, []).append(message)
        # Each run on its own: one waiting on Slack (no answer yet, a turn to come) holds back no other. Sweeps
        # may overlap (bot/runs/sweeper.py waits for one only so long): a later one skips the runs this one holds.
        counts = await asyncio.gather(
            *(self._sweep_run(run, owed) for run, owed in by_run.items()), return_exceptions=True
        )
        for run, count in zip(by_run, counts, strict=True):
            if isinstance(count, BaseException):  # that run's messages wait for a later sweep; the others went
                log.error("outbox: delivering what run %s owes failed", run, exc_info=count)
        return sum(count for count in counts if isinstance(count, int))

    async def _sweep_run(self, run: str, owed: list[OwedMessage]) -> int:
        self._swept[run] += 1
        try:
            async with self._locks[run], self._sweeping:
                pending = await self.store.still_pending([m.id for m in owed])  # the fast path may have sent some
                done = await self._deliver_run(run, [m for m in owed if m.id in pending])
                if done:
                    await self.store.delivered(done)
        finally:
            self._swept[run] -= 1
            if not self._swept[run]:
                del self._swept[run]
        self._forget_lock(run)
        return sum(1 for d in done if not d.dropped)

    def _forget_lock(self, run_id: str) -> None:
        lock = self._locks.get(run_id)
        if lock is not None and not lock.locked() and not lock._waiters:  # nobody is waiting on it either
            del self._locks[run_id]

    async def _deliver_run(self, run_id: str, owed: list[OwedMessage], as_written: bool = False) -> list[Delivery]:
        if not owed:
            return []
        view = await self.presenter.load(run_id, as_written=as_written)
        if view is None:
            return [Delivery(m, dropped=True) for m in owed]
        with acting_for(view.card.team_id):  # sent with the token of the run's workspace
            return await self._deliver_view(view, owed)

    async def _deliver_view(self, view: RunView, owed: list[OwedMessage]) -> list[Delivery]:
        done: list[Delivery] = []
        posted: dict[str, PauseMessage] = {}
        last_card = max((i for i, m in enumerate(owed) if m.kind == "card"), default=-1)
        last_redraw = {m.requirement_id: i for i, m in enumerate(owed) if m.kind == "redraw"}
        for index, message in enumerate(owed):
            if (message.kind == "card" and index != last_card) or (
                message.kind == "redraw" and index != last_redraw[message.requirement_id]
            ):
                done.append(Delivery(message))  # a later one of this batch shows the same state
                continue
            try:
                # A post that may have been made before (an attempt that failed, perhaps with no answer, or a
                # process that died holding it) first looks for its earlier self.
                unknown = message.attempts > 0 or message.taken_over
                delivery = await self.presenter.deliver(message, view, posted, look_first=unknown)
                if (delivery.pause is not None or delivery.copy is not None) and index < len(owed) - 1:
                    # recorded at once (the last of a batch is recorded with the batch, right after): a decision
                    # on it may be owed any moment
                    await self.store.delivered([delivery])
                    delivery.recorded = True
                done.append(delivery)
            except NotYet as exc:
                if message.kind in WAIT_ALONE:  # a copy waits alone; the others go on
                    await self._later([message], time.time() + RETRY_SOON, str(exc), counted=False)
                    continue
                await self._later(owed[index:], time.time() + RETRY_SOON, str(exc), counted=False)
                break
            except SlackCallFailed as exc:
                if exc.kind == "permanent":  # refused for good: recorded, a person told; the others go on
                    await self._give_up(view, message, exc)
                    continue
                # Not sent (its turn had not come): no attempt made, it waits just that long.
                delay = backoff(message.attempts, exc.retry_after, self.first_retry) if exc.sent else exc.retry_after
                log.warning(
                    "outbox: %s (message %s, attempt %d; retry in %.1fs)", exc, message.id, message.attempts + 1, delay
                )
                at = time.time() + (delay or RETRY_SOON)
                if message.kind in ALONE:
                    await self._later([message], at, str(exc), counted=exc.sent)
                    continue
                await self._later(owed[index:], at, str(exc), counted=exc.sent)
                break
        for listener in self.listeners:
            listener(view, done)
        return done

    async def _give_up(self, view: RunView, message: OwedMessage, exc: SlackCallFailed) -> None:
        """Slack refused `message` for good: record it as failed and tell a person (the operators' channel if
        set, else the run's starter by DM), once per run and error. A notice refused is only recorded."""
        log.warning("outbox: %s (message %s): refused for good, not retried", exc, message.id)
        notice = None
        if message.kind not in TOLD:
            card = view.card
            hint = ""
            if exc.error == "not_in_channel":
                hint = " Invite me to the channel (`/invite @kern`) so the run's next messages reach it."
            elif message.kind in ("pause", "dm"):
                hint = f" The run still waits: `/kern status {card.run_id[:12]}` shows it."
            text = (
                f":warning: Slack refused {SHOWS.get(message.kind, 'a message')} of run `{card.run_id[:12]}` "
                f"(`{ui.escape(view.entry.name)}`, started by <@{card.started_by}> in <#{card.channel}>): "
                f"`{exc.error}`. I will not try it again.{hint}"
            )
            to = {"channel": self.ops_channel} if self.ops_channel else {"dm": card.started_by}
            notice = {**to, "text": text}
        await self.store.fail_owed(message, error=exc.error, notice=notice, team=view.card.team_id)

    async def _later(self, owed: list[OwedMessage], at: float, error: str, *, counted: bool) -> None:
        """Leave the first message (and the run's later ones, behind it) pending until `at`."""
        await self.store.retry_owed(owed[0], at=at, error=error, count=counted)
        for message in owed[1:]:
            await self.store.retry_owed(message, at=at, error="waits for an earlier message", count=False)
