"""What the bot shows about a run: the run card, pause messages, and the decided form of a pause.

Everything is rendered from the run as stored, at the moment it is sent, so a message delivered late
(after a Slack error or a crash) shows the run as it is then, and sending it twice shows the same thing.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot import blocks as ui
from bot import notify
from bot.blocks import about
from bot.blocks.text import describe_duration, unseen
from bot.delivery.streams import Streams, answer_mark, split_answer
from bot.delivery.uploads import Uploads
from bot.registry import BotWorkflow, Registry
from bot.slack.gateway import SlackCallFailed, SlackGateway
from bot.slack.workspaces import team
from bot.store import BotStore, Card, Delivery, OwedMessage, PauseCopy, PauseMessage
from bot.store.pause_notes import pause_notes, read_notes
from bot.store.stream_rows import StreamRows
from kern.exceptions import CorruptRunError, RunNotFoundError
from kern.run import requirement as kinds
from kern.run.base import RunStatus
from kern.run.requirement import StepRequirement
from kern.run.workflow import WorkflowRunOutput

log = logging.getLogger("kern_bot")
MIN_PREFIX = 6  # characters of a run id that a command accepts
RETRY_SOON = 1.0  # seconds: a decided message waits this long for its pause message to be posted first
QUICK = 30.0  # seconds: a run that never paused and ended sooner was watched to its end; its starter is not told


@dataclass
class RunView:
    """A run as the presenter shows it: the bot's entry for its workflow, its card, its stored state, and
    its pause messages not yet decided (by requirement id, as they were when it was loaded)."""

    entry: BotWorkflow
    card: Card
    run: WorkflowRunOutput
    open_pauses: dict[str, PauseMessage] = field(default_factory=dict)


PAUSE_EVENT = "kern_pause"  # the metadata event type of a pause message
LOOK_PAGES = 5  # pages of a thread or channel read when looking for a pause message posted before


CARD_EVENT = "kern_run_card"  # the metadata event type of a run card
OWED_EVENT = "kern_owed"  # the metadata event type of a line owed by an outbox row (a notice, a reminder, an outcome)


def card_mark(run_id: str) -> dict[str, Any]:
    """The metadata a run card is posted with, by which a start taken up again finds it (`find_posted`)."""
    return {"event_type": CARD_EVENT, "event_payload": {"run_id": run_id}}


def owed_mark(message: OwedMessage) -> dict[str, Any]:
    """The metadata a line owed by an outbox row is posted with (the row's id), by which a retry finds it."""
    return {"event_type": OWED_EVENT, "event_payload": {"run_id": message.run_id, "row": message.id}}


def pause_mark(run_id: str, requirement_id: str) -> dict[str, Any]:
    """The metadata a pause message is posted with, by which a retry finds it (`Presenter.find_posted`)."""
    return {"event_type": PAUSE_EVENT, "event_payload": {"run_id": run_id, "requirement_id": requirement_id}}


class NotYet(Exception):
    """The message cannot be delivered before another one (its pause message is still owed)."""


who, stamp = ui.who, ui.stamp  # kept here for callers: a mention (or "kern"); "Approved by @x at <time>"


def card_view(
    entry: BotWorkflow,
    card: Card,
    run: WorkflowRunOutput | None,
    status: str | None = None,
    started_at: float | None = None,
) -> ui.Card:
    """The run card for the run's current state (or a given status line while it runs, `started_at`)."""
    view = ui.Card(run_id=card.run_id, workflow=entry.name, input=card.input, started_by=card.started_by)
    view.started_at = run.created_at if run is not None else started_at
    if run is not None and run.status in (RunStatus.COMPLETED, RunStatus.CANCELLED, RunStatus.ERROR):
        view.finished_at = run.updated_at
    if status is not None or run is None:
        view.status = status or view.status
    elif run.is_paused and run.step_requirements:
        req = run.step_requirements[-1]
        view.status = f":double_vertical_bar: Waiting: {ui.escape(req.step_name)} — {ui.waiting_for(req)}"
    elif run.status == RunStatus.COMPLETED:
        view.status, view.output, view.finished = ":white_check_mark: Completed", run.content, True
        view.routes = route_outputs(run)
    elif run.status == RunStatus.CANCELLED:
        reason = ui.as_text(run.content)  # kern's reason: "Cancelled by <@U1>", "Max retries (3) reached ..."
        line = ui.reason_line(reason)
        view.status = ":no_entry: " + (line if reason.startswith("Cancelled") else f"Cancelled: {line}")
        view.finished, view.ended = True, "Cancelled"
    elif run.status == RunStatus.ERROR:
        view.status, view.error, view.finished = ":x: Failed", run.error or str(run.content), True
        view.ended = "Failed"
    else:
        view.status = ":gear: Running…"
    return view


def route_outputs(run: WorkflowRunOutput) -> list[tuple[str, Any]]:
    """Each chosen route's output when the run ended with a Router that ran several routes (the run's
    output is the last route's alone); empty otherwise."""
    last = run.step_results[-1] if run.step_results else None
    if last is None or last.step_type != "Router" or not last.steps:
        return []
    ran = [(o.step_name or "route", o.content) for o in last.steps if not o.skipped]
    return ran if len(ran) > 1 else []


def output_text(run: WorkflowRunOutput) -> str:
    """The run's whole output as text ("View full output"): each chosen route's when a Router ran several."""
    routes = route_outputs(run)
    if not routes:
        return ui.as_text(run.content)
    return "\n\n".join(f"{name}:\n{ui.as_text(content)}" for name, content in routes)


def last_answer(req: StepRequirement) -> tuple[str | None, float | None]:
    """Who answered a pause, and when: its own resolver, or for a tool-call pause whoever decided its last
    call."""
    if req.resolved_by is not None or not req.executor_requirements:
        return req.resolved_by, req.resolved_at
    last = max(req.executor_requirements, key=lambda c: c.resolved_at or 0.0)
    return last.resolved_by, last.resolved_at


class Presenter:
    """Renders and sends the run card and pause messages."""

    def __init__(self, gateway: SlackGateway, registry: Registry, store: BotStore) -> None:
        self.gateway = gateway
        self.registry = registry
        self.store = store
        self.uploads = Uploads(gateway, store)  # files a conversation's agent made, to its thread
        self._links: dict[str, str] = {}  # run id -> permalink of its card
        self._logged: set[tuple[str, str]] = set()  # (pause, what) whose author's renderer failure was logged
        self.streams = Streams(gateway, StreamRows(store.db))  # conversations' answers streaming from here

    @staticmethod
    def branches(entry: BotWorkflow, req: StepRequirement) -> tuple[str, str] | None:
        """What a Condition's two answers run (its steps, its else steps), or None for other pauses."""
        node = entry.workflow.node_at(req.step_path) if req.step_type == "Condition" else None
        if node is None:
            return None
        return (
            ", ".join(s.name for s in node.steps) or "it",  # type: ignore[attr-defined]
            ", ".join(s.name for s in node.else_steps),  # type: ignore[attr-defined]
        )

    def asked(self, entry: BotWorkflow, req: StepRequirement, run: WorkflowRunOutput | None) -> StepRequirement:
        """`req` as its pause shows it: with its question worded from the run's data by the workflow's
        `step_messages` (a copy: the run's own requirement is never changed), or as it is."""
        made = about.question(entry.step_messages.get(req.step_name), run, req)
        if made.problem:
            self._log_once(entry, req, "step_messages", made.problem)
        if made.text is None:
            return req
        shown = copy.copy(req)
        shown.message = made.text
        return shown

    def about_view(self, entry: BotWorkflow, req: StepRequirement, run: WorkflowRunOutput | None) -> ui.Blocks:
        """What a pause is about (`bot.blocks.about`), the author's context renderer's included; a renderer
        that fails is left out and logged once per pause."""
        made = about.about_blocks(run, req, self.does(entry, req), entry.context_for(req.step_name))
        if made.problem:
            self._log_once(entry, req, "context renderer", made.problem)
        return made.blocks

    @staticmethod
    def does(entry: BotWorkflow, req: StepRequirement) -> str | None:
        """What confirming a pause runs, as mrkdwn: the step's description, its agent or team, its function,
        or the steps inside it; None when that is not known (or a Condition, whose buttons say it)."""
        node = entry.workflow.node_at(req.step_path) if req.step_path else None
        if node is None or req.step_type == "Condition":
            return None
        if node.description:
            return f"*{ui.escape(node.name)}*: {ui.escape(ui.truncate(node.description, 300))}"
        runner = getattr(node, "agent", None) or getattr(node, "team", None)
        if runner is not None:
            kind = "team" if getattr(node, "team", None) is not None else "agent"
            return f"the {kind} *{ui.escape(getattr(runner, 'name', None) or kind)}*"
        inner = [getattr(s, "name", None) or "step" for s in getattr(node, "steps", None) or []]
        if inner:
            return "its steps " + ", ".join(f"*{ui.escape(n)}*" for n in inner[:10])
        executor = getattr(node, "executor", None)
        name = getattr(executor, "__name__", None)
        return f"`{ui.escape(name)}`" if name and not name.startswith(("_", "<")) else None  # not a private one

    def _log_once(self, entry: BotWorkflow, req: StepRequirement, what: str, problem: str) -> None:
        key = (req.requirement_id, what)
        if key in self._logged:
            return
        if len(self._logged) > 10000:
            self._logged.clear()
        self._logged.add(key)
        log.error(
            "Workflow %r, step %r: its %s %s; pause %s is shown without it.",
            entry.name,
            req.step_name,
            what,
            problem,
            req.requirement_id,
        )

    def pause_view(
        self,
        entry: BotWorkflow,
        req: StepRequirement,
        decided: dict[int, str] | None = None,
        starter: str = "",
        tally: str | None = None,
        run: WorkflowRunOutput | None = None,
    ) -> tuple[str, ui.Blocks]:
        """A pause message's text and blocks, mentioning who may answer (`starter`: who started the run);
        `tally` adds lines under "Who may answer" (votes, hand-overs, escalation); `run`, the stored run,
        says what the pause is about (its input, the author's context)."""
        rules = entry.approvers_for(req.step_name)
        who = notify.who_may_answer(rules, starter) + (f"\n{tally}" if tally else "")
        return ui.pause_blocks(
            self.asked(entry, req, run),
            about=self.about_view(entry, req, run),
            workflow=entry.name,
            approvers=who,
            branches=self.branches(entry, req),
            tool_decisions=decided,
            mention=notify.mentions(rules, starter),
            standing=describe_duration(entry.standing_seconds) if entry.standing_seconds else None,
        )

    async def card_link(self, card: Card, *, must: bool = True) -> str | None:
        """A link to the run card (chat.getPermalink, remembered). `must`: raise SlackCallFailed if Slack
        will not give it (the outbox retries); else None."""
        if card.run_id not in self._links:
            method = self.gateway.send if must else self.gateway.call
            found = await method("chat_getPermalink", channel=card.channel, message_ts=card.ts)
            if not found:
                return None
            if len(self._links) > 1000:
                self._links.clear()
            self._links[card.run_id] = found["permalink"]
        return self._links[card.run_id]

    async def _elsewhere(self, entry: BotWorkflow, card: Card, blocks: ui.Blocks, *, must: bool = True) -> ui.Blocks:
        """`blocks` with a line linking back to the run card, for a message away from the card's thread
        (in the approvals channel, or a DM)."""
        link = await self.card_link(card, must=must)
        if link is None:
            return blocks
        opens = "open the conversation" if entry.conversation else "open the run card"  # a turn: its thread
        line = f"Run `{card.run_id[:12]}` of `{ui.escape(entry.name)}`: <{link}|{opens}>"
        return [*blocks, ui.context(line)]

    async def decided_view(
        self, entry: BotWorkflow, req: StepRequirement, detail: dict[str, Any], run: WorkflowRunOutput | None = None
    ) -> tuple[str, ui.Blocks, ui.Outcome]:
        """The decided form of a pause message, from the stored requirement, kern's recorded decision
        (`detail`: decision, by, at, status, note) and what was done to the pause on the way (its votes,
        hand-overs and escalation, read from the bot's tables)."""
        summaries = None
        if req.kind == kinds.EXECUTOR:
            decisions = await self.store.tool_decisions(req.requirement_id)
            summaries = {i: d["summary"] for i, d in decisions.items()}
        rules = entry.approvers_for(req.step_name)
        notes = (await read_notes(self.store.db, [req.requirement_id], with_votes=rules.votes))[req.requirement_id]
        result = ui.outcome(req, detail, self.branches(entry, req))
        fallback, blocks = ui.decided_blocks(
            self.asked(entry, req, run),
            workflow=entry.name,
            outcome=result,
            decision=detail.get("decision"),
            tool_summaries=summaries,
            trail=notes.trail(rules),
            note=detail.get("note"),
            voted=bool(notes.votes.approvals or notes.votes.rejections),
        )
        return fallback, blocks, result

    async def status_line(self, entry: BotWorkflow, card: Card, status: str, started_at: float | None = None) -> None:
        """Best effort: a progress line on the card while steps run (not owed: the next state replaces it)."""
        fallback, blocks = ui.card_blocks(card_view(entry, card, None, status, started_at))
        await self.gateway.call("chat_update", channel=card.channel, ts=card.ts, text=fallback, blocks=blocks)

    async def redraw(
        self,
        entry: BotWorkflow,
        req: StepRequirement,
        card: Card,
        clicked: tuple[str, str] | None = None,
        run: WorkflowRunOutput | None = None,
    ) -> None:
        """Draw an open pause's message and its copies again (and `clicked`, the message clicked, if the store
        does not know its ts yet), with what happened to it so far: tool calls decided, votes, hand-overs.
        Owed (`Owing.redraw`): raises `SlackCallFailed`, and the outbox tries again; a later redraw or
        the decision shows the same."""
        pause = await self.store.pause(req.requirement_id)
        main = (pause.channel, pause.ts) if pause is not None and pause.ts else None
        copies = [(c.channel, c.ts) for c in await self.store.copies(req.requirement_id)]
        places = [p for p in dict.fromkeys([main, *copies, clicked]) if p and p[1]]
        decided = None
        if req.kind == kinds.EXECUTOR:
            decided = {i: d["summary"] for i, d in (await self.store.tool_decisions(req.requirement_id)).items()}
        notes = await pause_notes(self.store.db, entry.approvers_for(req.step_name), req.requirement_id)
        fallback, blocks = self.pause_view(entry, req, decided, card.started_by, notes or None, run)
        away = blocks
        if entry.approvals_channel or copies:
            away = await self._elsewhere(entry, card, blocks, must=False)
        for channel, ts in places:
            shown = blocks if channel == card.channel else away
            await self.gateway.send("chat_update", channel=channel, ts=ts, text=fallback, blocks=shown)

    async def find(self, given: str, visible: Callable[[Card], Awaitable[bool]] | None = None) -> RunView | str:
        """The run a person means by `given` (its id, or a unique prefix of at least MIN_PREFIX characters,
        as on the card), or what to tell them. `visible`: whether the person may see a run (its card); the
        others are as if they did not exist, and none found says only that (`unseen`)."""
        given = given.strip().strip("`")
        if len(given) < MIN_PREFIX:
            return f"Give at least {MIN_PREFIX} characters of the run id (the card shows 12)."
        matches = await self.store.cards_by_prefix(given, team=team())
        if visible is not None:
            matches = [card for card in matches if await visible(card)]
            if not matches:
                return unseen(given)
        exact = next((c for c in matches if c.run_id == given), None)
        if exact is None and len(matches) > 1:
            listed = ", ".join(f"`{c.run_id[:12]}` ({ui.escape(c.workflow)})" for c in matches[:5])
            return f"`{ui.escape(given)}` matches several runs: {listed}. Give more of the id."
        try:
            found = await self.view((exact or matches[0]).run_id) if matches else None
        except CorruptRunError as exc:
            self.store.db.quarantine.hold(exc)
            return f"Run `{ui.escape(exc.run_id[:12])}` cannot be read, so I cannot show it: {ui.escape(exc.problem)}."
        return found or unseen(given)

    async def load(self, run_id: str, *, as_written: bool = False) -> RunView | None:
        """The run with its card and workflow, or None if this bot cannot show it (no card, a workflow it no
        longer offers, a run that cannot be read): messages about it are dropped, there is nowhere to show
        them. A run that cannot be read is quarantined (named in the log once).

        `as_written`: this process has just moved the run (a drive that ended where it stopped): show the
        state it saved last (`saved_here`) instead of reading it back, if the store still holds it. A
        change another process made since shows with that process's own delivery, as it would if it had
        landed just after a read."""
        try:
            return await self.view(run_id, as_written=as_written)
        except CorruptRunError as exc:
            self.store.db.quarantine.hold(exc)
            return None

    async def view(self, run_id: str, *, as_written: bool = False) -> RunView | None:
        """`load`, but a run that cannot be read raises `CorruptRunError`."""
        card, open_pauses = await self.store.card_with_open_pauses(run_id)
        entry = self.registry.get(card.workflow) if card else None
        if card is None or entry is None:
            return None
        saved = entry.workflow.saved_here(run_id) if as_written else None
        if saved is not None:
            return RunView(entry, card, saved, open_pauses)
        try:
            run = await entry.workflow.aget_run(run_id)
        except RunNotFoundError:
            return None
        return RunView(entry, card, run, open_pauses)

    async def deliver(
        self, message: OwedMessage, view: RunView, posted: dict[str, PauseMessage], *, look_first: bool = False
    ) -> Delivery:
        """Send one owed message about `view`'s run. `posted` holds pause messages posted earlier in the same
        batch (not yet recorded). `look_first`: an earlier attempt may have posted it without being told
        (its answer lost, its process dead): a pause message is looked for before it is posted again.
        Raises `SlackCallFailed` (retry later, or refused for good) or `NotYet`."""
        done = Delivery(message)
        entry, card, run = view.entry, view.card, view.run
        req = next((r for r in run.step_requirements if r.requirement_id == message.requirement_id), None)
        if message.kind == "card":
            fallback, blocks = ui.card_blocks(card_view(entry, card, run))
            await self.gateway.send("chat_update", channel=card.channel, ts=card.ts, text=fallback, blocks=blocks)
        elif message.kind == "pause" and req is not None:
            already = view.open_pauses.get(req.requirement_id) or await self.store.pause(req.requirement_id)
            if already is not None and already.ts:
                return done  # posted by an earlier attempt that recorded it
            fallback, blocks = self.pause_view(entry, req, starter=card.started_by, run=run)
            where: dict[str, Any] = {"channel": card.channel, "thread_ts": card.ts}
            if entry.approvals_channel:  # a top-level message there, linking back to the card
                where = {"channel": entry.approvals_channel}
                blocks = await self._elsewhere(entry, card, blocks)
            elif entry.notify == "broadcast":
                where["reply_broadcast"] = True  # the thread reply is shown in the channel too
            mark = pause_mark(run.run_id, req.requirement_id)
            ts = await self.find_posted(where, mark, card.ts) if look_first else None
            if ts is None:
                sent = await self.gateway.send("chat_postMessage", **where, text=fallback, blocks=blocks, metadata=mark)
                ts = sent["ts"]
            done.pause = PauseMessage(req.requirement_id, run.run_id, where["channel"], ts, "open", None, None)
            posted[req.requirement_id] = done.pause
        elif message.kind == "notice":  # a line that tells people (a hand-over, a reminder, an escalation)
            detail = message.detail or {}
            if detail.get("dm"):  # to one person, by DM
                opened = await self.gateway.send("conversations_open", users=detail["dm"])
                where = {"channel": opened["channel"]["id"]}
            elif detail.get("channel"):  # to a channel of its own (the operators')
                where = {"channel": detail["channel"]}
            else:  # in the run's thread
                where = {"channel": card.channel, "thread_ts": card.ts}
            await self._post_once(message, view, where, look_first, text=detail["text"])
        elif message.kind == "remind":
            return await self._remind(message, view, req, look_first)
        elif message.kind == "close_remind" and req is not None:
            await self._close_reminders(view, req, message.detail or {})
        elif message.kind == "outcome":
            await self._tell_outcome(message, view, look_first)
        elif message.kind == "answer":
            await self._answer(view, look_first=look_first)
        elif message.kind == "files":
            await self.uploads.deliver(message, card.channel, card.ts, run.step_results)
        elif message.kind == "redraw" and req is not None:
            if req.status == "pending":  # decided meanwhile: its decided form (owed with the decision) shows all
                clicked = (message.detail or {}).get("clicked")
                await self.redraw(entry, req, card, tuple(clicked) if clicked else None, run)
        elif message.kind == "dm" and req is not None:
            to = (message.detail or {}).get("to") or card.started_by
            done.copy = await self._send_copy(view, req, to, look_first=look_first)
        elif message.kind == "close_dm" and req is not None:
            detail = message.detail or {}
            to = detail.get("to") or card.started_by
            copy = next((c for c in await self.store.copies(req.requirement_id) if c.recipient == to), None)
            if copy is None:
                if await self.store.copy_still_owed(req.requirement_id, detail.get("to")):
                    raise NotYet(f"the DM copy of pause {req.requirement_id} for {to} is not posted yet")
                return done
            fallback, blocks, _result = await self.decided_view(entry, req, detail, run)
            blocks = await self._elsewhere(entry, card, blocks)
            await self.gateway.send("chat_update", channel=copy.channel, ts=copy.ts, text=fallback, blocks=blocks)
        elif message.kind == "close" and req is not None:
            pause = posted.get(req.requirement_id) or view.open_pauses.get(req.requirement_id)
            if pause is None or not pause.ts:
                pause = await self.store.pause(req.requirement_id)  # posted (or decided) since the view was read
            if pause is None or not pause.ts:
                if await self.store.pause_still_owed(req.requirement_id):
                    raise NotYet(f"pause {req.requirement_id} is not posted yet")
                return done
            fallback, blocks, result = await self.decided_view(entry, req, message.detail or {}, run)
            done.outcome = result.summary
            if pause.channel != card.channel:
                blocks = await self._elsewhere(entry, card, blocks)
            await self.gateway.send("chat_update", channel=pause.channel, ts=pause.ts, text=fallback, blocks=blocks)
        return done

    # ----- reminders, escalations, and the starter told how the run ended ----------------------------
    async def pause_link(self, requirement_id: str) -> str | None:
        """A link to a pause's message (chat.getPermalink), or None if it is not posted or Slack will not
        give one (best effort: the reminder then carries its controls without the link)."""
        pause = await self.store.pause(requirement_id)
        if pause is None or not pause.ts:
            return None
        found = await self.gateway.call("chat_getPermalink", channel=pause.channel, message_ts=pause.ts)
        return str(found["permalink"]) if found else None

    async def _remind(
        self, message: OwedMessage, view: RunView, req: StepRequirement | None, look_first: bool
    ) -> Delivery:
        """Post a reminder or an escalation (a "remind" row, bot/runs/timers.py), drawn from the run as it is
        now: dropped if its pause no longer waits (decided since it was owed). In the run's thread it names
        those the pause mentions (an escalation: the group it escalated to); by DM, its recipient alone."""
        done = Delivery(message)
        run, entry, card = view.run, view.entry, view.card
        active = run.step_requirements[-1] if run.is_paused and run.step_requirements else None
        if req is None or active is None or active.requirement_id != req.requirement_id or req.status != "pending":
            done.dropped = True
            return done
        detail = message.detail or {}
        kind = detail.get("kind", ui.REMIND)
        rules = entry.approvers_for(req.step_name)
        if detail.get("dm"):
            to = f"<@{detail['dm']}>"
        elif kind == ui.ESCALATE and rules.escalate_to is not None:
            to = rules.escalate_to.mentions()
        else:
            to = notify.mentions(rules, card.started_by)
        fallback, blocks = ui.reminder_blocks(
            req,
            workflow=entry.name,
            kind=kind,
            to=to,
            at=float(detail.get("at") or time.time()),
            n=int(detail.get("n") or 1),
            of=int(detail.get("of") or 1),
            link=await self.pause_link(req.requirement_id),
            branches=self.branches(entry, req),
        )
        if detail.get("dm"):
            opened = await self.gateway.send("conversations_open", users=detail["dm"])
            where: dict[str, Any] = {"channel": opened["channel"]["id"]}
        else:
            where = {"channel": card.channel, "thread_ts": card.ts}
        ts = await self._post_once(message, view, where, look_first, text=fallback, blocks=blocks)
        done.posted = (where["channel"], ts)
        return done

    async def _post_once(
        self, message: OwedMessage, view: RunView, where: dict[str, Any], look_first: bool, **post: Any
    ) -> str:
        """Post the line `message` owes `where` (a thread, or a channel or DM), with its row's metadata; with
        `look_first` (an earlier attempt may have posted it without being told), first look for it there
        and return the ts found instead of posting it twice. Returns the message's ts."""
        mark = owed_mark(message)
        if look_first and (ts := await self.find_posted(where, mark, view.card.ts)) is not None:
            return ts
        sent = await self.gateway.send("chat_postMessage", **where, **post, metadata=mark)
        return str(sent["ts"])

    async def _close_reminders(self, view: RunView, req: StepRequirement, detail: dict[str, Any]) -> None:
        """Redraw every reminder and escalation posted about `req`, now decided: the outcome and who decided,
        no controls. Waits (`NotYet`) while one may still be on its way (held by a process that read the
        pause before the decision); one not taken yet is never sent."""
        posted, sending = await self.store.reminders(view.run.run_id, req.requirement_id)
        if sending:
            raise NotYet(f"a reminder of pause {req.requirement_id} may be on its way")
        if not posted:
            return
        result = ui.outcome(req, detail, self.branches(view.entry, req))
        link = await self.pause_link(req.requirement_id)
        for reminder in posted:
            fallback, blocks = ui.reminder_decided_blocks(
                req, workflow=view.entry.name, kind=reminder.get("kind", ui.REMIND), result=result, link=link
            )
            await self.gateway.send(
                "chat_update", channel=reminder["channel"], ts=reminder["ts"], text=fallback, blocks=blocks
            )

    async def _answer(self, view: RunView, *, look_first: bool) -> None:
        """Show a conversation turn's answer in its thread (the model's text, escaped once), or why there is
        none (rejected, cancelled, failed): in the messages it streamed into (bot/delivery/streams.py), else
        posted, a long one in several messages. Posted once: a retry first looks for each by its metadata."""
        run, card = view.run, view.card
        status = run.status.value
        if status == "COMPLETED":
            text = ui.escape(ui.as_text(run.content)) or "_(no answer)_"
        elif status == "CANCELLED":
            text = f":no_entry_sign: Stopped: {ui.escape(run.error or ui.as_text(run.content) or 'cancelled')}"
        elif status == "ERROR":
            text = f":warning: I could not answer: {ui.escape(run.error or 'the run failed')}"
        else:
            return  # ended as owed, then continued: the later end answers
        pieces = split_answer(text)
        shown = await self.streams.finish(run.run_id, card.channel, text, pieces, completed=status == "COMPLETED")
        where: dict[str, Any] = {"channel": card.channel, "thread_ts": card.ts}
        for part in range(shown, len(pieces)):
            mark = answer_mark(run.run_id, part)
            if look_first and await self.find_posted(where, mark, card.ts) is not None:
                continue
            await self.gateway.send("chat_postMessage", **where, text=pieces[part], metadata=mark)

    async def _tell_outcome(self, message: OwedMessage, view: RunView, look_first: bool) -> None:
        """Tell the person who started the run how it ended: a line mentioning them in the card's thread, or
        (`dm`) by DM, with a link to the card. Not when they ended it themselves (cancelled it, rejected its
        pause, or answered its last pause under `QUICK` seconds before it ended), nor for a run that never
        paused and took under `QUICK` seconds: they watched it end."""
        run, card, entry = view.run, view.card, view.entry
        detail = message.detail or {}
        status = run.status.value
        if status not in ("COMPLETED", "CANCELLED", "ERROR"):
            return  # ended as owed, then continued (an error pause retried): the later end tells
        last = run.step_requirements[-1] if run.step_requirements else None
        rejected_by = None
        if status == "CANCELLED" and last is not None and last.confirmed is False and not last.timed_out:
            rejected_by = last.resolved_by or "kern"
        reason = (run.error or ui.as_text(run.content)) if status != "COMPLETED" else ""
        by_starter = (f"Cancelled by <@{card.started_by}>", f"Cancelled by {card.started_by}")
        if rejected_by == card.started_by or reason in by_starter:
            return
        if last is None and (run.updated_at or 0) - (run.created_at or 0) < QUICK:
            return
        by, at = last_answer(last) if last is not None else (None, None)
        if by == card.started_by and (run.updated_at or 0) - (at or 0) < QUICK:
            return  # they answered its last pause, and it ended right after
        text = ui.run_ended_text(
            starter=card.started_by,
            run_id=run.run_id,
            workflow=entry.name,
            status=status,
            reason=reason,
            rejected_by=rejected_by,
            feedback=last.rejection_feedback if rejected_by and last is not None else None,
            timed_out=status == "CANCELLED" and last is not None and last.timed_out,
        )
        if detail.get("dm"):
            if card.channel.startswith("D"):
                return  # the run lives in their DM with the bot: its thread told them
            link = await self.card_link(card, must=False)
            if link:
                text += f" <{link}|Open the run card>"
            opened = await self.gateway.send("conversations_open", users=card.started_by)
            await self._post_once(message, view, {"channel": opened["channel"]["id"]}, look_first, text=text)
        else:
            await self._post_once(message, view, {"channel": card.channel, "thread_ts": card.ts}, look_first, text=text)

    async def find_posted(self, where: dict[str, Any], mark: dict[str, Any], oldest: str) -> str | None:
        """The ts of a message already posted `where` (a thread, or a channel since `oldest`) with the
        metadata `mark`, or None: a pause message (`pause_mark`), a run card (`card_mark`), an owed line
        (`owed_mark`). Slack has no
        idempotency key for chat.postMessage; its message metadata, read back with include_all_metadata,
        serves as one (https://docs.slack.dev/messaging/message-metadata)."""
        cursor = None
        for _page in range(LOOK_PAGES):
            page: dict[str, Any] = {"channel": where["channel"], "include_all_metadata": True, "limit": 200}
            if cursor:
                page["cursor"] = cursor
            try:
                if "thread_ts" in where:
                    found = await self.gateway.send("conversations_replies", ts=where["thread_ts"], **page)
                else:
                    found = await self.gateway.send("conversations_history", oldest=oldest, **page)
            except SlackCallFailed as exc:
                if exc.kind == "transient":
                    raise  # looked for later, with the post
                return None  # cannot be read (a scope missing, say): post, as when nothing was found
            for posted in found.get("messages") or []:
                meta = posted.get("metadata") or {}
                if meta.get("event_type") == mark["event_type"] and meta.get("event_payload") == mark["event_payload"]:
                    return str(posted["ts"])
            cursor = (found.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None

    async def _send_copy(
        self, view: RunView, req: StepRequirement, to: str, *, look_first: bool = False
    ) -> PauseCopy | None:
        """Send the DM copy of a pause to `to` (once: a copy already sent is not sent again; none once the
        pause is decided; `look_first`: found in the DM by its metadata if an earlier attempt posted it).
        Raises SlackCallFailed (the outbox retries this copy alone)."""
        if req.status != "pending" or any(c.recipient == to for c in await self.store.copies(req.requirement_id)):
            return None
        opened = await self.gateway.send("conversations_open", users=to)
        channel = opened["channel"]["id"]
        mark = pause_mark(view.run.run_id, req.requirement_id)
        ts = await self.find_posted({"channel": channel}, mark, view.card.ts) if look_first else None
        if ts is None:
            fallback, blocks = self.pause_view(view.entry, req, starter=view.card.started_by, run=view.run)
            blocks = await self._elsewhere(view.entry, view.card, blocks)
            sent = await self.gateway.send(
                "chat_postMessage", channel=channel, text=fallback, blocks=blocks, metadata=mark
            )
            ts = sent["ts"]
        return PauseCopy(req.requirement_id, to, view.run.run_id, channel, ts, view.card.team_id)
