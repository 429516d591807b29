"""The pause forms: a modal opened from a pause's button (give input, edit the output, reject with
feedback or a reason, approve with a comment, read the full output), and its submission.

A modal opens at once with a loading view (the trigger id expires in 3 s) and is filled in once the pause
is loaded and the user's right to answer (or read) it is checked. A submission is read and checked here
(bad fields are shown in the form), then decided as a click is: loading, rules, votes and resuming are
`bot.surfaces.interactions.Interactions`'s, as for tool-call forms (`bot.surfaces.tool_calls`) and hand-overs
(`bot.surfaces.handover`), which open their forms with `Modals.open_form` too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from bot import blocks as ui
from bot.approvals.types import Check, Loaded
from bot.blocks.text import unseen
from bot.delivery.presenter import output_text
from bot.slack.workspaces import team
from bot.surfaces.interactions import Ack, Interactions, who_where
from kern.run.requirement import StepRequirement

EMPTY_EDIT = "The output cannot be empty. Write the new output, or close this and approve or reject it."


class Modals:
    """The handlers behind the buttons that open a pause's forms, and behind those forms' submissions."""

    def __init__(self, interactions: Interactions) -> None:
        self.ix = interactions
        self.gateway = interactions.gateway
        self.background = interactions.background
        self.access = interactions.access
        self.registry = interactions.registry
        self.store = interactions.store

    # ----- open fast, fill in after -----------------------------------------------------------------
    async def open_form(
        self,
        body: dict[str, Any],
        requirement_id: str,
        build: Callable[[Loaded], dict[str, Any]],
        *,
        reading: bool = False,
        check: Check | None = None,
    ) -> None:
        """Open a modal at once (a loading view: the trigger expires in 3 s), then fill it in once the pause
        is loaded and the user's right to answer it (or, `reading`, to read the run; or what `check` asks) is
        checked."""
        opened = await self.gateway.call("views_open", trigger_id=body["trigger_id"], view=ui.loading_modal())
        loaded = await self.ix.load(requirement_id)
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
            if reading:
                refusal = await self.access.may_read(loaded.entry, loaded.card, who)
            else:
                refusal = await (check or self.ix.may_answer)(loaded, who)
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

    async def on_open_approve(self, ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        self.background.spawn(self.open_form(body, action["value"], lambda ld: ui.approve_form(ld.req)))

    async def on_view_full(self, ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        value = action["value"]
        what, _, run_id = value.partition(":")
        if what in ("run", "input") and run_id:  # the card's whole output, or its whole input
            opened = await self.gateway.call("views_open", trigger_id=body["trigger_id"], view=ui.loading_modal())
            card = await self.store.card(run_id, team=team())
            entry = self.registry.get(card.workflow) if card else None
            if opened:  # a run that is not there and one they may not see: the same line
                refusal = await self.access.may_read(entry, card, body["user"]["id"]) if card and entry else None
                if card is None or entry is None or refusal:
                    new = ui.info_modal("Not available", refusal or unseen(run_id[:12]))
                elif what == "input":
                    new = ui.full_text_modal("Input", ui.as_text(card.input))
                else:
                    run = await entry.workflow.aget_run(run_id)
                    new = ui.full_text_modal("Output", output_text(run))
                await self.gateway.call("views_update", view_id=opened["view"]["id"], view=new)
            return
        self.background.spawn(
            self.open_form(body, value, lambda ld: ui.full_text_modal("Output", ui.review_text(ld.req)), reading=True)
        )

    # ----- submissions ------------------------------------------------------------------------------
    async def on_submit_input(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        loaded = await self.ix.load(view["private_metadata"])
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

        self.background.spawn(self.ix.decide(as_action_body(body), loaded.req.requirement_id, apply))

    async def on_submit_edit(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        text = ((view["state"]["values"].get("text") or {}).get("v") or {}).get("value") or ""
        if not text.strip():  # an edit replaces the output: with nothing, the run would complete with nothing
            await ack(response_action="errors", errors={"text": EMPTY_EDIT})
            return
        await ack()

        def apply(req: StepRequirement, user: str) -> None:
            req.edit(text, by=user)

        self.background.spawn(self.ix.decide(as_action_body(body), view["private_metadata"], apply))

    async def on_submit_feedback(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        feedback = (view["state"]["values"]["text"]["v"].get("value") or "").strip() or None

        def apply(req: StepRequirement, user: str) -> None:
            req.reject(feedback=feedback, by=user)

        vote = (False, feedback or None)
        self.background.spawn(self.ix.decide(as_action_body(body), view["private_metadata"], apply, vote))

    async def on_submit_approve(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        """An approval with a comment: decided as the Approve button is (the same rules; on a pause decided
        by votes, a vote with the comment), the comment kept in kern's audit log and on the decided message."""
        await ack()
        comment = (view["state"]["values"]["text"]["v"].get("value") or "").strip() or None

        def apply(req: StepRequirement, user: str) -> None:
            req.confirm(by=user, note=comment)

        vote = (True, comment)
        self.background.spawn(self.ix.decide(as_action_body(body), view["private_metadata"], apply, vote))


def as_action_body(body: dict[str, Any]) -> dict[str, Any]:
    """A view submission has no channel; the handlers look the card up instead."""
    return {"user": body["user"], "channel": {}, "message": {}}
