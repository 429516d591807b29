"""Starting runs from forms: `/kern run <workflow>` without input opens the workflow's start form (built
from its `input_schema`), `/kern run` without a name and the "Run a workflow" shortcut open a picker of
the workflows the person may start, then the form.

The form carries the workflow and the channel in `private_metadata`; on submit the input is validated by
the workflow's own model (errors shown inline, per field), the person's right to start it is checked
again (from the registry's rules, never from the payload; in a channel picked in the picker, only if
Slack says they are a member of it), and the run starts exactly as `/kern run`
with input starts it: the same card, in the channel the command was typed in (or, from the shortcut,
the channel picked in the picker).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from bot import blocks as ui
from bot.approvals.access import Access
from bot.registry import BotWorkflow, Registry
from bot.runs.background import Background
from bot.runs.runner import Runner
from bot.slack.gateway import SlackGateway

Ack = Callable[..., Awaitable[Any]]
OPEN_FAILED = "Slack would not open the form (it took too long); try again."


class StartForms:
    """The start form, the picker, and the shortcut that opens it."""

    def __init__(
        self, runner: Runner, registry: Registry, gateway: SlackGateway, background: Background, access: Access
    ) -> None:
        self.runner = runner
        self.registry = registry
        self.gateway = gateway
        self.background = background
        self.access = access

    # ----- /kern run -----------------------------------------------------------------------------------
    async def on_run_without_name(self, ack: Ack, command: dict[str, Any]) -> None:
        """`/kern run`: the picker (the run goes to the command's channel)."""
        await ack()
        self.background.spawn(
            self.open_picker(command["user_id"], command["channel_id"], command["trigger_id"], command)
        )

    async def takes_over(self, ack: Ack, entry: BotWorkflow, given: str, command: dict[str, Any]) -> bool:
        """For `/kern run <workflow> [input]` once the person may start it: True if handled here (no input
        for a workflow with an input schema opens its form; input that does not fit the schema is refused
        with the reasons), False if the run starts as usual (the workflow parses valid input itself)."""
        schema = entry.workflow.input_schema
        if schema is None:
            return False
        if not given:
            await ack()
            view = self.form(entry, command["channel_id"])
            self.background.spawn(self._open(command["trigger_id"], view, command))
            return True
        if not _json_object(given):
            await ack(
                response_type="ephemeral",
                text=f"`{ui.escape(entry.name)}` takes a form: type `/kern run {ui.escape(entry.name)}` without input "
                f"to open it, or give its input as JSON, e.g. `/kern run {ui.escape(entry.name)} "
                f"{ui.escape(ui.json_shape(schema))}`",
            )
            return True
        try:
            entry.workflow.validate_input(given)
        except ValueError as exc:
            problems = "; ".join(
                f"*{ui.escape(_label(k))}*: {ui.escape(v)}" for k, v in ui.form_errors(schema, exc).items()
            )
            await ack(
                response_type="ephemeral",
                text=f"That input does not fit `{entry.name}`: {problems}. "
                f"Type `/kern run {entry.name}` without input for a form.",
            )
            return True
        return False

    # ----- the shortcut --------------------------------------------------------------------------------
    async def on_shortcut(self, ack: Ack, body: dict[str, Any]) -> None:
        """The global shortcut: the picker, which also asks for the channel (a shortcut has none)."""
        await ack()
        self.background.spawn(self.open_picker(body["user"]["id"], None, body["trigger_id"], None))

    # ----- views ---------------------------------------------------------------------------------------
    def form(self, entry: BotWorkflow, channel: str, *, picked: bool = False) -> dict[str, Any]:
        """The start form of `entry` for a run in `channel` (`picked`: chosen in the picker, not where the
        command was typed, so the person's membership is checked again on submit)."""
        metadata = json.dumps({"wf": entry.name, "ch": channel, "picked": picked})
        return ui.start_modal(entry.name, entry.description, entry.workflow.input_schema, metadata=metadata)

    async def open_picker(
        self, user: str, channel: str | None, trigger_id: str, command: dict[str, Any] | None
    ) -> None:
        """Open the picker at once (a loading view: the trigger expires in 3 s), then list the workflows
        `user` may start (where the rule depends on the channel and none is known yet, the workflow is
        listed and the rule checked once the channel is picked)."""
        opened = await self.gateway.call("views_open", trigger_id=trigger_id, view=ui.loading_modal())
        if opened is None:
            if command is not None:
                await self.gateway.tell(command["channel_id"], user, OPEN_FAILED, None, command.get("response_url"))
            return
        entries = list(self.registry.entries.values())
        refusals = await asyncio.gather(*(self.access.may_start(e, user, channel or "") for e in entries))
        offered = [
            (e.name, e.description)
            for e, refusal in zip(entries, refusals, strict=True)
            if refusal is None or (channel is None and e.starters.channel_members)
        ]
        view = ui.picker_modal(offered, metadata=json.dumps({"ch": channel}), ask_channel=channel is None)
        await self.gateway.call(
            "views_update", view_id=opened["view"]["id"], hash=opened["view"].get("hash"), view=view
        )

    async def _open(self, trigger_id: str, view: dict[str, Any], command: dict[str, Any]) -> None:
        if await self.gateway.call("views_open", trigger_id=trigger_id, view=view) is None:
            await self.gateway.tell(
                command["channel_id"], command["user_id"], OPEN_FAILED, None, command.get("response_url")
            )

    async def on_submit_pick(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        """ "Next" in the picker: the chosen workflow's form replaces the picker (or an inline error)."""
        user = body["user"]["id"]
        name, picked_channel = ui.read_picker(view["state"]["values"])
        channel = _metadata(view).get("ch") or picked_channel
        entry = self.registry.get(name)
        if entry is None:
            await ack(response_action="errors", errors={ui.WORKFLOW_BLOCK: "This workflow is no longer offered."})
            return
        if not channel:
            await ack(response_action="errors", errors={ui.CHANNEL_BLOCK: "Choose a channel."})
            return
        picked = not _metadata(view).get("ch")
        refusal = (await self.access.may_post_in(user, channel) if picked else None) or await self.access.may_start(
            entry, user, channel
        )
        if refusal:
            await _refuse(ack, ui.CHANNEL_BLOCK if picked_channel else ui.WORKFLOW_BLOCK, refusal)
            return
        await ack(response_action="update", view=self.form(entry, channel, picked=picked))

    async def on_submit_start(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        """ "Start": validate with the workflow's model (inline errors), check the right to start, start."""
        user = body["user"]["id"]
        meta = _metadata(view)
        entry, channel = self.registry.get(str(meta.get("wf", ""))), str(meta.get("ch") or "")
        schema = entry.workflow.input_schema if entry else None
        # an error about the whole form goes under the submitted view's first input
        first = next((b["block_id"] for b in view.get("blocks", []) if b.get("type") == "input"), None)
        first = first or ui.first_block(schema)
        if entry is None or not channel:
            await ack(response_action="errors", errors={first: "This workflow is no longer offered."})
            return
        raw = ui.read_start(schema, view["state"]["values"])
        try:
            value = entry.workflow.validate_input(raw) if schema is not None else raw
        except ValueError as exc:
            await ack(response_action="errors", errors=ui.form_errors(schema, exc))
            return
        refusal = (await self.access.may_post_in(user, channel) if meta.get("picked") else None) or (
            await self.access.may_start(entry, user, channel)
        )
        if refusal:
            await _refuse(ack, first, refusal)
            return
        await ack()
        if schema is None:
            self.background.spawn(self.runner.start(entry, value, user, channel))
        else:
            summary = ui.form_summary(schema, value)
            self.background.spawn(self.runner.start(entry, summary, user, channel, value=value))


async def _refuse(ack: Ack, block: str, refusal: str) -> None:
    """Say no in the form: under `block` (an input's error is plain text), or, when the refusal is mrkdwn
    (mentions, which only mrkdwn shows as names, or code), in a small view pushed over the form, which stays
    beneath it (another channel or workflow may be chosen after)."""
    if any(mark in refusal for mark in ("<@", "<!", "`", "*")):
        await ack(response_action="push", view=ui.info_modal("Not allowed", refusal))
    else:
        await ack(response_action="errors", errors={block: refusal})


def _json_object(text: str) -> bool:
    """Whether `text` reads as a JSON object (the input of a workflow with an input schema, typed inline)."""
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


def _metadata(view: dict[str, Any]) -> dict[str, Any]:
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _label(block_id: str) -> str:
    return ui.humanize(block_id.removeprefix("start_"))
