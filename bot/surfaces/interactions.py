"""Clicks that decide a pause: check who may answer, resolve the pause, continue the run.

The core every pause handler shares: `load` a pause, check the clicker may answer it (`ready`), apply a
decision, count it as a vote where the step needs several people, and resume the run (`decide`). The
buttons that decide outright (approve, reject, retry, skip) and the route picker are here; the forms
(`bot.surfaces.modals`), tool-call cards (`bot.surfaces.tool_calls`) and hand-overs
(`bot.surfaces.handover`) decide through it.

Every handler acks first. Resolution is compare-and-set in kern: of two people clicking at once, one
resumes the run and the other is told, privately, who got there first.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot import blocks as ui
from bot.approvals.access import Access
from bot.approvals.ballots import Ballots, Voting
from bot.approvals.types import Check, Loaded
from bot.delivery.presenter import Presenter
from bot.logs import about
from bot.registry import BotWorkflow, Registry
from bot.runs.background import CURRENT_JOB, Background
from bot.runs.runner import Runner
from bot.slack.gateway import SlackGateway
from bot.slack.workspaces import team
from bot.store import BotStore, Card
from bot.store.metrics import Metrics
from kern.exceptions import CorruptRunError, JournalMismatchError, RunNotPausedError, StoreError
from kern.run.requirement import StepRequirement
from kern.run.workflow import WorkflowRunOutput

Ack = Callable[..., Awaitable[Any]]
log = logging.getLogger("kern_bot")


class Interactions:
    """Loading a pause, the rules on who may answer it, and deciding it; the listeners of the buttons that
    decide a pause outright and of the route picker."""

    def __init__(
        self,
        runner: Runner,
        registry: Registry,
        store: BotStore,
        gateway: SlackGateway,
        background: Background,
        access: Access,
        presenter: Presenter,
        metrics: Metrics | None = None,
    ) -> None:
        self.runner = runner
        self.registry = registry
        self.store = store
        self.gateway = gateway
        self.background = background
        self.access = access
        self.presenter = presenter
        self.metrics = metrics or Metrics()
        self.voting = Voting(Ballots(store.db), gateway, runner.outbox)
        # Called with the user when their click on a view (the App Home) finds its pause over.
        self.on_stale_view: Callable[[str], None] | None = None

    # ----- loading and permission ---------------------------------------------------------------
    async def load(self, requirement_id: str) -> Loaded | str:
        """Everything about a pause, read from the db; or why it cannot be answered."""
        pause, card = await self.store.pause_with_card(requirement_id, team=team())
        if pause is None:
            return "This card does not belong to a run I know."
        entry = self.registry.get(card.workflow) if card else None
        if card is None or entry is None:
            return "The workflow of this run is no longer offered by this bot."
        try:
            run = await entry.workflow.aget_run(pause.run_id)
        except CorruptRunError as exc:
            self.store.db.quarantine.hold(exc)
            return f"This run cannot be read, so this pause cannot be answered: {ui.escape(exc.problem)}."
        req = run.step_requirements[-1] if run.is_paused and run.step_requirements else None
        if req is None or req.requirement_id != requirement_id:
            return (
                already_answered(run, requirement_id) or f"This pause is over; the run is {run.status.value.lower()}."
            )
        return Loaded(entry, card, pause, run, req)

    async def load_run(self, entry: BotWorkflow, card: Card) -> Loaded | None:
        """The run's current pause, loaded as a click would load it; None if it is not paused (or cannot be
        read: then it is quarantined, named in the log once)."""
        try:
            run = await entry.workflow.aget_run(card.run_id)
        except CorruptRunError as exc:
            self.store.db.quarantine.hold(exc)
            return None
        if not run.is_paused or not run.step_requirements:
            return None
        loaded = await self.load(run.step_requirements[-1].requirement_id)
        return None if isinstance(loaded, str) else loaded

    async def ready(self, body: dict[str, Any], requirement_id: str, check: Check | None = None) -> Loaded | None:
        """The pause a click in `body` answers, if its clicker may answer it (or pass `check`); else None,
        the clicker told why."""
        user, channel, thread = who_where(body)
        reply = body.get("response_url")
        return await self.ready_for(user, requirement_id, channel=channel, thread=thread, reply=reply, check=check)

    async def ready_for(
        self,
        user: str,
        requirement_id: str,
        *,
        channel: str = "",
        thread: str | None = None,
        reply: str | None = None,
        check: Check | None = None,
    ) -> Loaded | None:
        """The pause `requirement_id`, if `user` may answer it (`check(loaded, user)`, when given, asks
        something else of `Access`: handing it over, giving a standing approval); else None, and `user` is
        told why (in `channel`'s `thread`, or through the `reply` response URL; with no channel, in the
        run's thread)."""
        about(requirement_id=requirement_id)
        loaded = await self.load(requirement_id)
        if isinstance(loaded, str):
            if not channel and self.on_stale_view is not None:  # on the App Home: show it as it is now
                self.on_stale_view(user)
                return None
            await self.gateway.tell(channel, user, loaded, thread, reply)
            return None
        about(run_id=loaded.run.run_id)
        refusal = await (check or self.may_answer)(loaded, user)
        if refusal:
            await self.gateway.tell(channel or loaded.card.channel, user, refusal, thread or loaded.card.ts, reply)
            return None
        job = CURRENT_JOB.get()
        if job is not None:  # an acknowledged click: the transaction recording `user`'s decision ends it
            job.working_on(loaded.run.run_id, user)
        return loaded

    async def may_answer(self, loaded: Loaded, user: str) -> str | None:
        """Why `user` may not answer this pause, or None (see `Access.may_answer_pause`)."""
        return await self.access.may_answer_pause(loaded.entry, loaded.card, user, loaded.req)

    # ----- resolving --------------------------------------------------------------------------------
    async def decide(
        self,
        body: dict[str, Any],
        requirement_id: str,
        apply: Callable[[StepRequirement, str], None],
        vote: tuple[bool, str | None] | None = None,
    ) -> None:
        """Apply a decision (`apply(req, user)` resolves the pause or raises ValueError) and continue the
        run. The decided message is owed by the same transaction that records the decision.

        `vote` (approve?, note) marks an approval or a rejection: where the step's approvers need several
        people (N of M), it is counted, and the run continues only once the votes decide."""
        loaded = await self.ready(body, requirement_id)
        if loaded is None:
            return
        user = body["user"]["id"]
        try:
            if vote is not None and loaded.entry.approvers_for(loaded.req.step_name).takes_votes(loaded.req.kind):
                approve, note = vote
                decided = await self.voting.vote(
                    loaded.entry,
                    loaded.card,
                    loaded.run.run_id,
                    loaded.req,
                    user,
                    approve=approve,
                    note=note,
                    response_url=body.get("response_url"),
                )
                if not decided:
                    return
            else:
                apply(loaded.req, user)
        except ValueError as exc:
            await self.gateway.tell(
                loaded.card.channel, user, ui.escape(str(exc)), loaded.card.ts, body.get("response_url")
            )
            return
        await self.resume(loaded, user, body.get("response_url"))

    async def resume(self, loaded: Loaded, user: str, response_url: str | None = None) -> None:
        events = loaded.entry.workflow.acontinue_run(loaded.run, stream=True, stream_events=True)
        try:
            await self.runner.follow(loaded.entry, loaded.card, events, loaded.run.created_at)
        except RunNotPausedError as exc:
            if not is_person(user):  # kern acting (a grant, an approval record): whoever got there first goes on
                log.info("run %s was continued elsewhere first: %s", loaded.run.run_id, exc)
                return
            run = await loaded.entry.workflow.aget_run(loaded.run.run_id)
            text = already_answered(run, loaded.req.requirement_id) or ui.escape(str(exc))
            await self.gateway.tell(loaded.card.channel, user, text, loaded.card.ts, response_url)
        except (JournalMismatchError, CorruptRunError, StoreError) as exc:  # nothing changed: the pause still waits
            if isinstance(exc, StoreError) and CURRENT_JOB.get() is not None:
                raise  # an acknowledged click: kept, and tried again until the database answers (bot/runs/jobs.py)
            text = f"I could not continue this run, and nothing changed: {ui.escape(str(exc))}"
            await self.gateway.tell(loaded.card.channel, user, text, loaded.card.ts, response_url)
        else:
            self.metrics.decisions.labels("person").inc()
            log.info("pause decided by %s", user)

    # ----- buttons ----------------------------------------------------------------------------------
    def button(self, action_id: str) -> Callable[..., Awaitable[None]]:
        """The listener of a button that decides a pause outright (approve, reject, retry, skip)."""
        resolve = SIMPLE_DECISIONS[action_id]
        vote = {ui.CONFIRM: (True, None), ui.REJECT: (False, None)}.get(action_id)

        async def on_click(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
            await ack()
            self.background.spawn(self.decide(body, action["value"], resolve, vote))

        return on_click

    async def on_route_pick(self, ack: Ack) -> None:
        await ack()  # the choice is read from the message state when Continue is clicked

    async def on_route_go(self, ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        state = route_state(body, action)
        picked = state.get("selected_options") or ([state["selected_option"]] if state.get("selected_option") else [])

        def apply(req: StepRequirement, user: str) -> None:
            choices = req.available_choices or []
            names = [
                choices[int(o["value"])] for o in picked if o["value"].isdigit() and int(o["value"]) < len(choices)
            ]
            if not names:
                raise ValueError("Choose a route first, then click Continue.")
            req.select(*names, by=user)

        self.background.spawn(self.decide(body, action["value"], apply))


SIMPLE_DECISIONS: dict[str, Callable[[StepRequirement, str], None]] = {
    ui.CONFIRM: lambda req, user: req.confirm(by=user),
    ui.REJECT: lambda req, user: req.reject(by=user),
    ui.RETRY: lambda req, user: req.retry(by=user),
    ui.SKIP: lambda req, user: req.skip(by=user),
}


def already_answered(run: WorkflowRunOutput, requirement_id: str) -> str | None:
    """'Already approved by @x' for a pause someone else resolved (read from kern, not from Slack)."""
    req = next((r for r in run.step_requirements if r.requirement_id == requirement_id), None)
    if req is None or req.status == "pending":
        return None
    if req.timed_out:
        return "Already answered: nobody answered in time, so its deadline decided."
    if req.error_action:
        verb = "retried" if req.error_action == "retry" else "skipped"
    elif req.selected_choices:
        verb = f"routed to {', '.join(ui.escape(c) for c in req.selected_choices)}"
    elif req.user_input is not None:
        verb = "answered"
    elif req.kind == "executor":
        verb = "decided"
    elif req.edited_output is not None:
        verb = "edited"
    elif req.step_type == "Condition":  # its No may run the else branch: no rejection
        verb = "answered"
    else:
        verb = "approved" if req.confirmed else "rejected"
    who = req.resolved_by
    if who and who.startswith("U"):
        who = f"<@{who}>"
    return f"Already {verb}" + (f" by {who}" if who else "") + "."


def is_person(user: str) -> bool:
    """A Slack user (told privately what happened), not kern acting on its own (grants, approval records)."""
    return user.startswith(("U", "W"))


def route_state(body: dict[str, Any], action: dict[str, Any]) -> dict[str, Any]:
    """The route picker's state beside a Continue button: in the message (`state`), or on the App Home
    (`view.state`), where each pause's picker has a block id and action id of its own (`:<n>`, as its
    Continue button)."""
    values = (body.get("state") or (body.get("view") or {}).get("state") or {}).get("values") or {}
    suffix = action.get("action_id", "")[len(ui.ROUTE_GO) :]
    block = values.get(ui.ROUTE_BLOCK + suffix) or values.get(ui.ROUTE_BLOCK) or {}
    return block.get(ui.ROUTE_PICK + suffix) or block.get(ui.ROUTE_PICK) or {}


def who_where(body: dict[str, Any]) -> tuple[str, str, str | None]:
    """Who clicked, and where: the channel and thread of the clicked message ('' and None off a message)."""
    user = body["user"]["id"]
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or ""
    message = body.get("message") or {}
    return user, channel, message.get("thread_ts") or message.get("ts")
