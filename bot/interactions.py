"""Button clicks and form submissions: check who may answer, resolve the pause, continue the run.

Every handler acks first. Resolution is compare-and-set in kern: of two people clicking at once, one
resumes the run and the other is told, privately, who got there first.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot import blocks as ui
from bot.access import Access
from bot.background import Background
from bot.gateway import SlackGateway
from bot.presenter import Presenter, stamp
from bot.registry import BotWorkflow, Registry
from bot.runner import Runner
from bot.store import BotStore, Card, PauseMessage
from kern.exceptions import JournalMismatchError, RunNotPausedError, StoreError
from kern.run.agent import RunRequirement
from kern.run.requirement import StepRequirement
from kern.run.workflow import WorkflowRunOutput

Ack = Callable[..., Awaitable[Any]]


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
    ) -> None:
        self.runner = runner
        self.registry = registry
        self.store = store
        self.gateway = gateway
        self.background = background
        self.access = access
        self.presenter = presenter
        self._tool_forms()

    # ----- loading and permission ---------------------------------------------------------------
    async def load(self, requirement_id: str) -> Loaded | str:
        """Everything about a pause, read from the db; or why it cannot be answered."""
        pause = await self.store.pause(requirement_id)
        if pause is None:
            return "This card does not belong to a run I know."
        card = await self.store.card(pause.run_id)
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

    async def _ready(self, body: dict[str, Any], requirement_id: str) -> Loaded | None:
        user, channel, thread = _who_where(body)
        loaded = await self.load(requirement_id)
        if isinstance(loaded, str):
            await self.gateway.tell(channel, user, loaded, thread, body.get("response_url"))
            return None
        refusal = await self.access.may_answer(loaded.entry, loaded.card, user)
        if refusal:
            await self.gateway.tell(
                channel or loaded.card.channel, user, refusal, thread or loaded.card.ts, body.get("response_url")
            )
            return None
        return loaded

    # ----- resolving --------------------------------------------------------------------------------
    async def decide(
        self, body: dict[str, Any], requirement_id: str, apply: Callable[[StepRequirement, str], None]
    ) -> None:
        """Apply a decision (`apply(req, user)` resolves the pause or raises ValueError) and continue the
        run. The decided message is owed by the same transaction that records the decision."""
        loaded = await self._ready(body, requirement_id)
        if loaded is None:
            return
        user = body["user"]["id"]
        try:
            apply(loaded.req, user)
        except ValueError as exc:
            await self.gateway.tell(loaded.card.channel, user, str(exc), loaded.card.ts, body.get("response_url"))
            return
        await self.resume(loaded, user, body.get("response_url"))

    async def resume(self, loaded: Loaded, user: str, response_url: str | None = None) -> None:
        events = loaded.entry.workflow.acontinue_run(loaded.run, stream=True, stream_events=True)
        try:
            await self.runner.follow(loaded.entry, loaded.card, events)  # type: ignore[arg-type]
        except RunNotPausedError as exc:
            run = await loaded.entry.workflow.aget_run(loaded.run.run_id)
            text = already_answered(run, loaded.req.requirement_id) or str(exc)
            await self.gateway.tell(loaded.card.channel, user, text, loaded.card.ts, response_url)
        except (JournalMismatchError, StoreError) as exc:  # nothing changed: the pause still waits
            text = f"I could not continue this run, and nothing changed: {exc}"
            await self.gateway.tell(loaded.card.channel, user, text, loaded.card.ts, response_url)

    # ----- buttons ----------------------------------------------------------------------------------
    def button(self, action_id: str) -> Callable[..., Awaitable[None]]:
        """The listener of a button that decides a pause outright (approve, reject, retry, skip)."""
        resolve = SIMPLE_DECISIONS[action_id]

        async def on_click(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
            await ack()
            self.background.spawn(self.decide(body, action["value"], resolve))

        return on_click

    async def on_route_pick(self, ack: Ack) -> None:
        await ack()  # the choice is read from the message state when Continue is clicked

    async def on_route_go(self, ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        state = (body.get("state") or {}).get("values", {}).get(ui.ROUTE_BLOCK, {}).get(ui.ROUTE_PICK, {})
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
    async def _open(
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
            user, channel, thread = _who_where(body)
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
            check = self.access.may_read if reading else self.access.may_answer
            refusal = await check(loaded.entry, loaded.card, body["user"]["id"])
            new = ui.info_modal("Not allowed", refusal) if refusal else build(loaded)
        await self.gateway.call("views_update", view_id=view["id"], hash=view.get("hash"), view=new)

    async def on_open_input(self, ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        self.background.spawn(
            self._open(
                body,
                action["value"],
                lambda ld: ui.input_modal(
                    ld.req.user_input_schema or [],
                    callback_id=ui.V_INPUT,
                    metadata=ld.req.requirement_id,
                    message=ld.req.message,
                ),
            )
        )

    async def on_open_edit(self, ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        self.background.spawn(
            self._open(
                body,
                action["value"],
                lambda ld: ui.text_modal(
                    ui.V_EDIT,
                    "Edit output",
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
            self._open(
                body,
                action["value"],
                lambda ld: ui.text_modal(
                    ui.V_FEEDBACK,
                    "Send back",
                    metadata=ld.req.requirement_id,
                    label="What should change?",
                    submit="Reject",
                ),
            )
        )

    async def on_view_full(self, ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        value = action["value"]
        if value.startswith("run:"):
            opened = await self.gateway.call("views_open", trigger_id=body["trigger_id"], view=ui.loading_modal())
            card = await self.store.card(value[4:])
            entry = self.registry.get(card.workflow) if card else None
            if opened and card and entry:
                refusal = await self.access.may_read(entry, card, body["user"]["id"])
                if refusal:
                    new = ui.info_modal("Not allowed", refusal)
                else:
                    run = await entry.workflow.aget_run(value[4:])
                    new = ui.full_text_modal("Output", ui.as_text(run.content))
                await self.gateway.call("views_update", view_id=opened["view"]["id"], view=new)
            return
        self.background.spawn(
            self._open(body, value, lambda ld: ui.full_text_modal("Output", ui.review_text(ld.req)), reading=True)
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
                values = json.loads(raw)
            except (ValueError, RecursionError):
                values = None
            if not isinstance(values, dict):  # null, a list, a number or a string is no set of fields
                await ack(response_action="errors", errors={"free": "Enter a JSON object"})
                return
        _, problems = loaded.req.check_user_input(**values)
        if problems:
            index = {f.name: i for i, f in enumerate(schema)}
            errors = {ui.field_block_id(index[name]): problem for name, problem in problems.items() if name in index}
            await ack(response_action="errors", errors=errors or {"free": "; ".join(problems.values())})
            return
        await ack()

        def apply(req: StepRequirement, user: str) -> None:
            req.set_user_input(by=user, **values)

        self.background.spawn(self.decide(_as_action_body(body), loaded.req.requirement_id, apply))

    async def on_submit_edit(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        text = view["state"]["values"]["text"]["v"].get("value") or ""

        def apply(req: StepRequirement, user: str) -> None:
            req.edit(text, by=user)

        self.background.spawn(self.decide(_as_action_body(body), view["private_metadata"], apply))

    async def on_submit_feedback(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        feedback = view["state"]["values"]["text"]["v"].get("value") or ""

        def apply(req: StepRequirement, user: str) -> None:
            req.reject(feedback=feedback, by=user)

        self.background.spawn(self.decide(_as_action_body(body), view["private_metadata"], apply))

    # ----- tool calls (executor pauses) -----------------------------------------------------------------
    async def on_tool_ok(self, ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        self.background.spawn(
            self.tool_decision(
                body,
                action["value"],
                lambda call, user: (call.confirm(by=user), ":white_check_mark: " + stamp("Approved", user, None))[1],
            )
        )

    def _call_form(self, build: Callable[[Loaded, RunRequirement, str], dict[str, Any]]) -> Callable[..., Any]:
        """The listener of a tool-call button that opens a form about that call (`build(loaded, call,
        value)`; the button's value, `<requirement id>:<call index>`, becomes the form's metadata)."""

        async def on_click(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
            await ack()
            rid, index = _split(action["value"])

            def form(ld: Loaded) -> dict[str, Any]:
                calls = ld.req.executor_requirements or []
                if index >= len(calls):
                    return ui.info_modal("Not available", "This tool call is no longer waiting.")
                return build(ld, calls[index], action["value"])

            self.background.spawn(self._open(body, rid, form))

        return on_click

    def _tool_forms(self) -> None:
        """The tool-call buttons that open a form: reject with a note, fill in a tool's input, give an
        external tool's result, answer an agent's questions."""
        self.on_tool_no = self._call_form(
            lambda ld, call, value: ui.text_modal(
                ui.V_TOOL_NOTE,
                "Reject tool call",
                metadata=value,
                label="Note for the agent (optional)",
                submit="Reject",
                optional=True,
            )
        )
        self.on_tool_input = self._call_form(
            lambda ld, call, value: ui.input_modal(
                call.user_input_schema or [],
                callback_id=ui.V_TOOL_INPUT,
                metadata=value,
                message=f"Values for {call.tool_execution.tool_name}",
                title="Tool input",
            )
        )
        self.on_tool_result = self._call_form(
            lambda ld, call, value: ui.text_modal(
                ui.V_TOOL_RESULT,
                "Tool result",
                metadata=value,
                label="Result",
                intro=f"Run `{ui.escape(call.tool_execution.tool_name)}` yourself; paste its result.",
                submit="Submit",
            )
        )
        self.on_tool_answer = self._call_form(
            lambda ld, call, value: ui.feedback_modal(
                call.user_feedback_schema or [], metadata=value, intro=f"{_asker(call)} asks you to choose:"
            )
        )

    async def on_submit_tool_feedback(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        """Answers to an agent's questions: checked here (inline errors, nothing recorded), then recorded
        with `provide_user_feedback` like any tool decision."""
        rid, index = _split(view["private_metadata"])
        loaded = await self.load(rid)
        calls = [] if isinstance(loaded, str) else loaded.req.executor_requirements or []
        if isinstance(loaded, str) or index >= len(calls):
            text = loaded if isinstance(loaded, str) else "This question is no longer asked."
            await ack(response_action="update", view=ui.info_modal("Not available", text))
            return
        questions = calls[index].user_feedback_schema or []
        answers, errors = ui.read_feedback(questions, view["state"]["values"])
        if not errors:
            try:  # kern is the authority on what a valid answer is
                RunRequirement.from_dict(calls[index].to_dict()).provide_user_feedback(answers)
            except ValueError as exc:
                shown = questions[: ui.MAX_QUESTIONS]
                named = [i for i, q in enumerate(shown) if repr(q.question) in str(exc)] or [0]
                errors = {ui.question_block_id(named[0]): str(exc)}
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        summary = ui.feedback_summary(questions, answers)
        self.background.spawn(
            self.tool_decision(
                _as_action_body(body),
                view["private_metadata"],
                lambda call, user: (
                    call.provide_user_feedback(answers, by=user),
                    ":speech_balloon: " + stamp("Answered", user, None) + f": {summary}",
                )[1],
            )
        )

    async def on_submit_tool_note(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        note = view["state"]["values"]["text"]["v"].get("value") or None
        self.background.spawn(
            self.tool_decision(
                _as_action_body(body),
                view["private_metadata"],
                lambda call, user: (
                    call.reject(note=note, by=user),
                    ":no_entry_sign: " + stamp("Rejected", user, None) + (f": {ui.quote(note, 500)}" if note else ""),
                )[1],
            )
        )

    async def on_submit_tool_input(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        rid, index = _split(view["private_metadata"])
        loaded = await self.load(rid)
        if isinstance(loaded, str):
            await ack(response_action="update", view=ui.info_modal("Not available", loaded))
            return
        call = _call(loaded, index)
        schema = call.user_input_schema or []
        values = ui.read_inputs(schema, view["state"]["values"])
        probe = RunRequirement.from_dict(call.to_dict())
        try:
            probe.provide_user_input(values)
        except ValueError as exc:
            await ack(
                response_action="errors",
                errors={ui.field_block_id(i): str(exc) for i in range(len(schema)) if schema[i].name in str(exc)}
                or {"f0": str(exc)},
            )
            return
        await ack()
        self.background.spawn(
            self.tool_decision(
                _as_action_body(body),
                view["private_metadata"],
                lambda c, user: (c.provide_user_input(values, by=user), ":memo: " + stamp("Filled in", user, None))[1],
            )
        )

    async def on_submit_tool_result(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        result = view["state"]["values"]["text"]["v"].get("value") or ""
        self.background.spawn(
            self.tool_decision(
                _as_action_body(body),
                view["private_metadata"],
                lambda call, user: (
                    call.set_external_execution_result(result, by=user),
                    ":inbox_tray: " + stamp("Result given", user, None),
                )[1],
            )
        )

    async def tool_decision(
        self, body: dict[str, Any], value: str, apply: Callable[[RunRequirement, str], str]
    ) -> None:
        """Record one tool call's decision; when every call of the pause is decided, continue the run."""
        rid, index = _split(value)
        loaded = await self._ready(body, rid)
        if loaded is None:
            return
        user = body["user"]["id"]
        calls = loaded.req.executor_requirements or []
        if index >= len(calls):
            return
        try:
            summary = apply(calls[index], user)
        except ValueError as exc:
            await self.gateway.tell(loaded.card.channel, user, str(exc), loaded.card.ts, body.get("response_url"))
            return
        if not await self.store.record_tool_decision(rid, index, calls[index].to_dict(), user, summary):
            decided = (await self.store.tool_decisions(rid)).get(index, {})
            await self.gateway.tell(
                loaded.card.channel,
                user,
                f"Already answered: {decided.get('summary', '')}",
                loaded.card.ts,
                body.get("response_url"),
            )
            return
        decisions = await self.store.tool_decisions(rid)
        if len(decisions) < len(calls):  # others still wait: show this one as decided
            _user, channel, _thread = _who_where(body)
            clicked = (channel, (body.get("message") or {}).get("ts", "")) if channel else None
            await self.presenter.show_tool_decisions(
                loaded.entry, loaded.req, {i: d["summary"] for i, d in decisions.items()}, clicked
            )
            return
        loaded.req.executor_requirements = [
            RunRequirement.from_dict(decisions[i]["decision"]) for i in range(len(calls))
        ]
        await self.resume(loaded, user, body.get("response_url"))


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
    else:
        verb = "approved" if req.confirmed else "rejected"
    who = req.resolved_by
    if who and who.startswith("U"):
        who = f"<@{who}>"
    return f"Already {verb}" + (f" by {who}" if who else "") + "."


def _split(value: str) -> tuple[str, int]:
    rid, _, index = value.partition(":")
    return rid, int(index or 0)


def _call(loaded: Loaded, index: int) -> RunRequirement:
    return (loaded.req.executor_requirements or [])[index]


def _asker(call: RunRequirement) -> str:
    return f"*{ui.escape(call.member_agent_name)}*" if call.member_agent_name else "The agent"


def _who_where(body: dict[str, Any]) -> tuple[str, str, str | None]:
    user = body["user"]["id"]
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or ""
    message = body.get("message") or {}
    return user, channel, message.get("thread_ts") or message.get("ts")


def _as_action_body(body: dict[str, Any]) -> dict[str, Any]:
    """A view submission has no channel; the handlers look the card up instead."""
    return {"user": body["user"], "channel": {}, "message": {}}
