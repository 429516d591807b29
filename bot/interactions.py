"""Button clicks and form submissions: check who may answer, resolve the pause, continue the run.

Every handler acks first. Resolution is compare-and-set in kern: of two people clicking at once, one
resumes the run and the other is told, privately, who got there first.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot import blocks as ui
from bot.access import Access
from bot.background import Background
from bot.ballots import Ballots, Voting
from bot.gateway import SlackGateway
from bot.handover import Handovers
from bot.logs import about
from bot.metrics import Metrics
from bot.presenter import Presenter, output_text
from bot.registry import BotWorkflow, Registry
from bot.runner import Runner
from bot.store import BotStore, Card, PauseMessage
from bot.teams import team
from kern.exceptions import JournalMismatchError, RunNotPausedError, StoreError
from kern.run.requirement import StepRequirement
from kern.run.workflow import WorkflowRunOutput

Ack = Callable[..., Awaitable[Any]]
log = logging.getLogger("kern_bot")


@dataclass
class Loaded:
    entry: BotWorkflow
    card: Card
    pause: PauseMessage
    run: WorkflowRunOutput
    req: StepRequirement


class Interactions:
    """The handlers behind every interactive element the bot posts."""

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
        self.voting = Voting(Ballots(store.db), gateway, presenter, store)
        self.handovers = Handovers(self)
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
        run = await entry.workflow.aget_run(pause.run_id)
        req = run.step_requirements[-1] if run.is_paused and run.step_requirements else None
        if req is None or req.requirement_id != requirement_id:
            return (
                already_answered(run, requirement_id) or f"This pause is over; the run is {run.status.value.lower()}."
            )
        return Loaded(entry, card, pause, run, req)

    async def load_run(self, entry: BotWorkflow, card: Card) -> Loaded | None:
        """The run's current pause, loaded as a click would load it; None if it is not paused."""
        run = await entry.workflow.aget_run(card.run_id)
        if not run.is_paused or not run.step_requirements:
            return None
        loaded = await self.load(run.step_requirements[-1].requirement_id)
        return None if isinstance(loaded, str) else loaded

    async def ready(self, body: dict[str, Any], requirement_id: str) -> Loaded | None:
        """The pause a click in `body` answers, if its clicker may answer it; else None, the clicker told why."""
        user, channel, thread = who_where(body)
        reply = body.get("response_url")
        return await self.ready_for(user, requirement_id, channel=channel, thread=thread, reply=reply)

    async def ready_for(
        self, user: str, requirement_id: str, *, channel: str = "", thread: str | None = None, reply: str | None = None
    ) -> Loaded | None:
        """The pause `requirement_id`, if `user` may answer it; else None, and `user` is told why (in
        `channel`'s `thread`, or through the `reply` response URL; with no channel, in the run's thread)."""
        about(requirement_id=requirement_id)
        loaded = await self.load(requirement_id)
        if isinstance(loaded, str):
            if not channel and self.on_stale_view is not None:  # on the App Home: show it as it is now
                self.on_stale_view(user)
                return None
            await self.gateway.tell(channel, user, loaded, thread, reply)
            return None
        about(run_id=loaded.run.run_id)
        refusal = await self.may_answer(loaded, user)
        if refusal:
            await self.gateway.tell(channel or loaded.card.channel, user, refusal, thread or loaded.card.ts, reply)
            return None
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
            if vote is not None and self.voting.applies(loaded.entry, loaded.req):
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
            await self.gateway.tell(loaded.card.channel, user, str(exc), loaded.card.ts, body.get("response_url"))
            return
        await self.resume(loaded, user, body.get("response_url"))

    async def resume(self, loaded: Loaded, user: str, response_url: str | None = None) -> None:
        events = loaded.entry.workflow.acontinue_run(loaded.run, stream=True, stream_events=True)
        try:
            await self.runner.follow(loaded.entry, loaded.card, events, loaded.run.created_at)
        except RunNotPausedError as exc:
            run = await loaded.entry.workflow.aget_run(loaded.run.run_id)
            text = already_answered(run, loaded.req.requirement_id) or str(exc)
            await self.gateway.tell(loaded.card.channel, user, text, loaded.card.ts, response_url)
        except (JournalMismatchError, StoreError) as exc:  # nothing changed: the pause still waits
            text = f"I could not continue this run, and nothing changed: {exc}"
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

    # ----- modals: open fast, fill in after --------------------------------------------------------
    async def open_form(
        self,
        body: dict[str, Any],
        requirement_id: str,
        build: Callable[[Loaded], dict[str, Any]],
        *,
        reading: bool = False,
    ) -> None:
        """Open a modal at once (a loading view: the trigger expires in 3 s), then fill it in once the pause
        is loaded and the user's right to answer it (or, `reading`, to read the run) is checked."""
        opened = await self.gateway.call("views_open", trigger_id=body["trigger_id"], view=ui.loading_modal())
        loaded = await self.load(requirement_id)
        if opened is None:
            user, channel, thread = who_where(body)
            await self.gateway.tell(
                channel,
                user,
                "Slack would not open the form (it took too long); click again.",
                thread,
                body.get("response_url"),
            )
            return
        view = opened["view"]
        if isinstance(loaded, str):
            new = ui.info_modal("Not available", loaded)
        else:
            who = body["user"]["id"]
            refusal = await (
                self.access.may_read(loaded.entry, loaded.card, who) if reading else self.may_answer(loaded, who)
            )
            new = ui.info_modal("Not allowed", refusal) if refusal else build(loaded)
        await self.gateway.call("views_update", view_id=view["id"], hash=view.get("hash"), view=new)

    async def on_open_input(self, ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        self.background.spawn(
            self.open_form(
                body,
                action["value"],
                lambda ld: ui.input_modal(
                    ld.req.user_input_schema or [],
                    callback_id=ui.V_INPUT,
                    metadata=ld.req.requirement_id,
                    message=ld.req.message,
                    title=ui.form_title(ld.req.step_name),
                ),
            )
        )

    async def on_open_edit(self, ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        self.background.spawn(
            self.open_form(
                body,
                action["value"],
                lambda ld: ui.text_modal(
                    ui.V_EDIT,
                    ui.form_title(ld.req.step_name, "Edit: "),
                    metadata=ld.req.requirement_id,
                    label="Output",
                    initial=ui.review_text(ld.req),
                    submit="Save",
                ),
            )
        )

    async def on_open_feedback(self, ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        self.background.spawn(
            self.open_form(
                body,
                action["value"],
                lambda ld: ui.feedback_form(ld.req),
            )
        )

    async def on_view_full(self, ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        value = action["value"]
        if value.startswith("run:"):
            opened = await self.gateway.call("views_open", trigger_id=body["trigger_id"], view=ui.loading_modal())
            card = await self.store.card(value[4:], team=team())
            entry = self.registry.get(card.workflow) if card else None
            if opened and card and entry:
                refusal = await self.access.may_read(entry, card, body["user"]["id"])
                if refusal:
                    new = ui.info_modal("Not allowed", refusal)
                else:
                    run = await entry.workflow.aget_run(value[4:])
                    new = ui.full_text_modal("Output", output_text(run))
                await self.gateway.call("views_update", view_id=opened["view"]["id"], view=new)
            return
        self.background.spawn(
            self.open_form(body, value, lambda ld: ui.full_text_modal("Output", ui.review_text(ld.req)), reading=True)
        )

    # ----- modal submissions --------------------------------------------------------------------------
    async def on_submit_input(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        loaded = await self.load(view["private_metadata"])
        if isinstance(loaded, str):
            await ack(response_action="update", view=ui.info_modal("Not available", loaded))
            return
        schema = loaded.req.user_input_schema or []
        values = ui.read_inputs(schema, view["state"]["values"])
        if not schema:
            raw = view["state"]["values"].get("free", {}).get("v", {}).get("value") or "{}"
            try:
                parsed = json.loads(raw)
            except (ValueError, RecursionError):
                parsed = None
            if not isinstance(parsed, dict):  # null, a list, a number or a string is no set of fields
                await ack(response_action="errors", errors={"free": "Enter a JSON object"})
                return
            values = parsed
        _, problems = loaded.req.check_user_input(**values)
        if problems:
            index = {f.name: i for i, f in enumerate(schema)}
            errors = {
                ui.field_block_id(index[name]): ui.field_error(name, problem)
                for name, problem in problems.items()
                if name in index
            }
            await ack(response_action="errors", errors=errors or {"free": "; ".join(problems.values())})
            return
        await ack()

        def apply(req: StepRequirement, user: str) -> None:
            req.set_user_input(by=user, **values)

        self.background.spawn(self.decide(as_action_body(body), loaded.req.requirement_id, apply))

    async def on_submit_edit(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        text = view["state"]["values"]["text"]["v"].get("value") or ""

        def apply(req: StepRequirement, user: str) -> None:
            req.edit(text, by=user)

        self.background.spawn(self.decide(as_action_body(body), view["private_metadata"], apply))

    async def on_submit_feedback(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        feedback = view["state"]["values"]["text"]["v"].get("value") or None

        def apply(req: StepRequirement, user: str) -> None:
            req.reject(feedback=feedback, by=user)

        vote = (False, feedback or None)
        self.background.spawn(self.decide(as_action_body(body), view["private_metadata"], apply, vote))


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
        verb = f"routed to {', '.join(req.selected_choices)}"
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


def route_state(body: dict[str, Any], action: dict[str, Any]) -> dict[str, Any]:
    """The route picker's state beside a Continue button: in the message (`state`), or on the App Home
    (`view.state`), where each pause's picker has a block id and action id of its own (`:<n>`, as its
    Continue button)."""
    values = (body.get("state") or (body.get("view") or {}).get("state") or {}).get("values") or {}
    suffix = action.get("action_id", "")[len(ui.ROUTE_GO) :]
    block = values.get(ui.ROUTE_BLOCK + suffix) or values.get(ui.ROUTE_BLOCK) or {}
    return block.get(ui.ROUTE_PICK + suffix) or block.get(ui.ROUTE_PICK) or {}


def who_where(body: dict[str, Any]) -> tuple[str, str, str | None]:
    user = body["user"]["id"]
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or ""
    message = body.get("message") or {}
    return user, channel, message.get("thread_ts") or message.get("ts")


def as_action_body(body: dict[str, Any]) -> dict[str, Any]:
    """A view submission has no channel; the handlers look the card up instead."""
    return {"user": body["user"], "channel": {}, "message": {}}
