"""Tool-call pauses (an agent's calls that wait for a person): approve, reject with a note, fill in a
tool's input, give an external tool's result, answer an agent's questions. Each call is decided on its
own; when every call of the pause is decided, the run continues.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot import blocks as ui
from bot.approvals.elsewhere import ResolvedElsewhere
from bot.approvals.grants import Grants, scope_words
from bot.approvals.types import Check, Loaded
from bot.surfaces.interactions import Ack, Interactions, is_person, who_where
from bot.surfaces.modals import Modals, as_action_body
from kern.db.hot import Tx
from kern.run.agent import RunRequirement

NOT_A_CALL = "That tool call is not one of this pause's: nothing was decided."


class ToolCalls:
    """The handlers behind a tool-call card's buttons and forms (loading, rules and resuming are the
    `Interactions` ones; forms open as `Modals` opens them)."""

    def __init__(self, base: Interactions, modals: Modals) -> None:
        self.base = base
        self.modals = modals
        self.gateway = base.gateway
        self.background = base.background
        self.store = base.store
        self.presenter = base.presenter
        self.outbox = base.runner.outbox
        self.grants = Grants(self.store, base.access, self.outbox, base.load_run, self.calls_decided)
        base.runner.on_tool_pause.append(self.grants.apply)
        self.elsewhere = ResolvedElsewhere(self.store, self.outbox, self.background, base.load, self.calls_decided)
        base.runner.on_sweep.append(self.elsewhere.sweep)
        self.on_allow_run, self.on_allow_workflow = self._allow(False), self._allow(True)
        self._tool_forms()

    async def on_tool_ok(self, ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()

        def approve(call: RunRequirement, user: str) -> str:
            call.confirm(by=user)
            return ":white_check_mark: " + ui.stamp("Approved", user, None)

        self.background.spawn(self.tool_decision(body, action["value"], approve))

    def _call_form(self, build: Callable[[Loaded, RunRequirement, str], dict[str, Any]]) -> Callable[..., Any]:
        """The listener of a tool-call button that opens a form about that call (`build(loaded, call,
        value)`; the button's value, `<requirement id>:<call index>`, becomes the form's metadata)."""

        async def on_click(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
            await ack()
            rid, index = ui.read_call_value(action["value"])

            def form(ld: Loaded) -> dict[str, Any]:
                call = _call(ld, index)
                if call is None:
                    return ui.info_modal("Not available", NOT_A_CALL)
                return build(ld, call, action["value"])

            self.background.spawn(self.modals.open_form(body, rid, form))

        return on_click

    def _tool_forms(self) -> None:
        """The tool-call buttons that open a form: reject with a note, fill in a tool's input, give an
        external tool's result, answer an agent's questions."""
        self.on_tool_no = self._call_form(
            lambda ld, call, value: ui.text_modal(
                ui.V_TOOL_NOTE,
                "Reject tool call",
                metadata=value,
                label="Note for the agent",  # Slack adds "(optional)" to an optional input's label
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
                title=ui.form_title(call.tool_execution.tool_name),
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
        rid, index = ui.read_call_value(view["private_metadata"])
        loaded = await self.base.load(rid)
        asked = None if isinstance(loaded, str) else _call(loaded, index)
        if isinstance(loaded, str) or asked is None:
            text = loaded if isinstance(loaded, str) else NOT_A_CALL
            await ack(response_action="update", view=ui.info_modal("Not available", text))
            return
        questions = asked.user_feedback_schema or []
        answers, errors = ui.read_feedback(questions, view["state"]["values"])
        if not errors:
            try:  # kern is the authority on what a valid answer is
                RunRequirement.from_dict(asked.to_dict()).provide_user_feedback(answers)
            except ValueError as exc:
                shown = questions[: ui.MAX_QUESTIONS]
                named = [i for i, q in enumerate(shown) if repr(q.question) in str(exc)] or [0]
                errors = {ui.question_block_id(named[0]): str(exc)}
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        summary = ui.feedback_summary(questions, answers)

        def answer(call: RunRequirement, user: str) -> str:
            call.provide_user_feedback(answers, by=user)
            return ":speech_balloon: " + ui.stamp("Answered", user, None) + f": {summary}"

        self.background.spawn(self.tool_decision(as_action_body(body), view["private_metadata"], answer))

    async def on_submit_tool_note(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        note = view["state"]["values"]["text"]["v"].get("value") or None

        def reject(call: RunRequirement, user: str) -> str:
            call.reject(note=note, by=user)
            return ":no_entry_sign: " + ui.stamp("Rejected", user, None) + (f": {ui.quote(note, 500)}" if note else "")

        self.background.spawn(self.tool_decision(as_action_body(body), view["private_metadata"], reject))

    async def on_submit_tool_input(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        rid, index = ui.read_call_value(view["private_metadata"])
        loaded = await self.base.load(rid)
        call = None if isinstance(loaded, str) else _call(loaded, index)
        if isinstance(loaded, str) or call is None:
            text = loaded if isinstance(loaded, str) else NOT_A_CALL
            await ack(response_action="update", view=ui.info_modal("Not available", text))
            return
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

        def fill_in(c: RunRequirement, user: str) -> str:
            c.provide_user_input(values, by=user)
            return ":memo: " + ui.stamp("Filled in", user, None)

        self.background.spawn(self.tool_decision(as_action_body(body), view["private_metadata"], fill_in))

    async def on_submit_tool_result(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        result = view["state"]["values"]["text"]["v"].get("value") or ""

        def give_result(call: RunRequirement, user: str) -> str:
            call.set_external_execution_result(result, by=user)
            return ":inbox_tray: " + ui.stamp("Result given", user, None)

        self.background.spawn(self.tool_decision(as_action_body(body), view["private_metadata"], give_result))

    async def tool_decision(
        self, body: dict[str, Any], value: str, apply: Callable[[RunRequirement, str], str]
    ) -> None:
        """Record one tool call's decision; when every call of the pause is decided, continue the run."""
        target = await self._target(body, value)
        if target is None:
            return
        loaded, index = target
        rid, user, calls = loaded.req.requirement_id, body["user"]["id"], loaded.req.executor_requirements or []
        try:
            summary = apply(calls[index], user)
        except ValueError as exc:
            await self.gateway.tell(
                loaded.card.channel, user, ui.escape(str(exc)), loaded.card.ts, body.get("response_url")
            )
            return
        decision = calls[index].to_dict()
        _user, channel, _thread = who_where(body)
        clicked = (channel, (body.get("message") or {}).get("ts", "")) if channel else None

        def owes(tx: Tx) -> None:  # this call shown decided on the pause message, while others wait
            self.outbox.owing.redraw(tx, loaded.card.run_id, rid, clicked)

        if not await self.store.record_tool_decision(
            rid, index, decision, user, summary, team=loaded.card.team_id, owes=owes
        ):
            decided = (await self.store.tool_decisions(rid)).get(index, {})
            await self.gateway.tell(
                loaded.card.channel,
                user,
                f"Already answered: {decided.get('summary', '')}",
                loaded.card.ts,
                body.get("response_url"),
            )
            return
        await self.calls_decided(loaded, user, body.get("response_url"))

    async def _target(self, body: dict[str, Any], value: str, check: Check | None = None) -> tuple[Loaded, int] | None:
        """The pause and the index of the call a button or form names (`value`), if the person may answer it
        (or pass `check`); else None, and they are told why, privately. An index that is not one of the
        pause's calls (a tampered payload: `-1`, `7` of 2, `x`) is refused, and nothing is recorded."""
        rid, index = ui.read_call_value(value)
        loaded = await self.base.ready(body, rid, check)
        if loaded is None:
            return None
        if index is None or _call(loaded, index) is None:
            user, reply = body["user"]["id"], body.get("response_url")
            await self.gateway.tell(loaded.card.channel, user, NOT_A_CALL, loaded.card.ts, reply)
            return None
        return loaded, index

    async def calls_decided(self, loaded: Loaded, user: str, response_url: str | None = None) -> None:
        """After a call's decision (recorded with the redraw of the pause message it owes): continue the run
        if every call is decided, else hand the redraw to delivery (the calls decided shown, others waiting)."""
        calls = loaded.req.executor_requirements or []
        decisions = await self.store.tool_decisions(loaded.req.requirement_id)
        if not decisions:
            return
        if len(decisions) < len(calls):
            await self.outbox.deliver(loaded.card.run_id)
            return
        loaded.req.executor_requirements = [
            RunRequirement.from_dict(decisions[i]["decision"]) for i in range(len(calls))
        ]
        await self._resolve_approvals(loaded, decisions, user, response_url)
        await self.base.resume(loaded, user, response_url)

    async def _resolve_approvals(
        self, loaded: Loaded, decisions: dict[int, dict[str, Any]], user: str, response_url: str | None
    ) -> None:
        """Calls of `@approval` tools (`type="required"`) wait on their approval record, not on the pause: the
        person who decided each call on its card resolves its record (compare-and-set, recorded in kern's
        audit log with who decided). A record resolved first elsewhere (`db.resolve_approval` from Python)
        keeps its decision: kern continues with it, and the person is told."""
        for index, call in enumerate(loaded.req.executor_requirements or []):
            if not call.approval_id or call.tool_execution.approval_type != "required":
                continue
            approved = call.tool_execution.confirmed is not False
            try:
                await self.store.db.resolve_approval(
                    call.approval_id,
                    approved=approved,
                    resolved_by=decisions[index]["by"],
                    note=call.tool_execution.confirmation_note,
                )
            except (ValueError, LookupError) as exc:
                if not is_person(user):  # kern acting on a record's own decision: it stands, nobody to tell
                    continue
                text = f"{ui.escape(str(exc))} That decision stands for `{ui.escape(call.tool_execution.tool_name)}`."
                await self.gateway.tell(loaded.card.channel, user, text, loaded.card.ts, response_url)

    def _allow(self, workflow_wide: bool) -> Callable[..., Any]:
        """The listener of "Always allow <tool> in this run" (or "… in this workflow"): record the
        standing approval, then approve this call like "Approve once"."""

        async def on_click(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
            await ack()
            self.background.spawn(self._allow_and_approve(body, action["value"], workflow_wide))

        return on_click

    async def _allow_and_approve(self, body: dict[str, Any], value: str, workflow_wide: bool) -> None:
        access = self.base.access
        target = await self._target(body, value, lambda ld, u: access.may_grant(ld.entry, ld.card, u, ld.req))
        if target is None:
            return
        loaded, index = target
        user, call = body["user"]["id"], (loaded.req.executor_requirements or [])[index]
        if workflow_wide and not loaded.entry.standing_seconds:
            await self.gateway.tell(loaded.card.channel, user, "This workflow allows no workflow-wide approvals.")
            return
        tool = call.tool_execution.tool_name
        where = scope_words(await self.grants.grant(loaded, tool, user, workflow_wide=workflow_wide))

        def approve(call: RunRequirement, who: str) -> str:
            call.confirm(by=who)
            return ":white_check_mark: " + ui.stamp(f"Approved, and always allowed {where}", who, None)

        await self.tool_decision(body, value, approve)


def _asker(call: RunRequirement) -> str:
    return f"*{ui.escape(call.member_agent_name)}*" if call.member_agent_name else "The agent"


def _call(loaded: Loaded, index: int | None) -> RunRequirement | None:
    """The pause's call at `index` (as `ui.read_call_value` reads it), or None if it has none there."""
    calls = loaded.req.executor_requirements or []
    return calls[index] if index is not None and 0 <= index < len(calls) else None
