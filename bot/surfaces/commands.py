"""`/kern`: run, list, status, cancel, help. Acked at once; runs go on in the background."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from bot import blocks as ui
from bot.approvals.access import Access
from bot.delivery.presenter import RunView
from bot.registry import BotWorkflow, Registry
from bot.runs.background import Background
from bot.runs.jobs import REFUSED, START, Job, Jobs
from bot.runs.runner import Runner
from bot.slack.gateway import SlackGateway
from bot.slack.workspaces import team
from bot.store import BotStore, Card
from bot.surfaces.start_forms import StartForms
from bot.surfaces.your_runs import YourRuns
from kern.exceptions import RunNotPausedError, StoreError
from kern.ids import new_id
from kern.run.base import RunStatus

USAGE = (
    "Usage: `/kern run [workflow] [input]` · `/kern list` · `/kern status <run>` · `/kern cancel <run>` · `/kern help`"
)


class Commands:
    def __init__(
        self,
        runner: Runner,
        registry: Registry,
        store: BotStore,
        gateway: SlackGateway,
        background: Background,
        access: Access,
        start_forms: StartForms,
        jobs: Jobs,
    ) -> None:
        self.runner = runner
        self.registry = registry
        self.store = store
        self.gateway = gateway
        self.background = background
        self.access = access
        self.start_forms = start_forms
        self.jobs = jobs
        self.your_runs = YourRuns(registry, store, runner.presenter)

    async def on_command(
        self, ack: Callable[..., Awaitable[Any]], command: dict[str, Any], context: dict[str, Any]
    ) -> None:
        text = (command.get("text") or "").strip()
        user, channel = command["user_id"], command["channel_id"]
        verb, _, rest = text.partition(" ")
        rest = rest.strip()
        if verb == "run":
            name, _, given = rest.partition(" ")
            if not name:
                await self.start_forms.on_run_without_name(ack, command)
                return
            entry = self.registry.get(name)
            if entry is None:
                known = ", ".join(f"`{ui.escape(n)}`" for n in self.registry.entries) or "none"
                await ack(
                    response_type="ephemeral",
                    text=f"Unknown workflow `{ui.escape(name or '?')}`. Workflows: {known}. {USAGE}",
                )
                return
            refusal = await self.access.may_start(entry, user, channel)
            if refusal:
                await ack(response_type="ephemeral", text=refusal)
                return
            if await self.start_forms.takes_over(ack, entry, given.strip(), command):  # a form, or bad input
                return
            await self.start(ack, entry, given.strip(), command, context["request_key"])
        elif verb == "list":
            lines = [
                f"• `{ui.escape(name)}`: {ui.escape(about or 'no description')}"
                for name, about in await self.startable(user, channel)
            ]
            await ack(response_type="ephemeral", text="Workflows you can run:\n" + ("\n".join(lines) or "none here."))
        elif verb in ("status", "cancel") and not rest:
            await ack(
                response_type="ephemeral",
                text=f"Which run? Give its id: `/kern {verb} <run id>` (the run's card shows it; "
                "its first 6 characters are enough)." + (" Your latest runs follow." if verb == "status" else ""),
            )
            if verb == "status":  # read (and linked) after the ack: the links are Slack calls
                self.background.spawn(self.list_runs(user, channel, command.get("response_url")))
        elif verb == "status":
            await ack(response_type="ephemeral", text=await self.status(rest, user))
        elif verb == "cancel":
            await ack(response_type="ephemeral", text=f"Cancelling `{ui.escape(rest)}`…")
            self.background.spawn(self.cancel(rest, user, channel, command.get("response_url")))
        elif verb in ("", "help"):
            await ack(response_type="ephemeral", text=await self.help(command.get("command") or "/kern", user, channel))
        else:
            await ack(response_type="ephemeral", text=f"I don't know `{ui.escape(text[:100])}`. {USAGE}")

    async def start(
        self, ack: Callable[..., Awaitable[Any]], entry: BotWorkflow, text: str, command: dict[str, Any], key: str
    ) -> None:
        """Acknowledged means durable: the start is written (bot/runs/jobs.py) before "Starting…" is answered,
        and runs from there; if it cannot be written, the answer says it did not start."""
        name = entry.name
        payload = {
            "workflow": name,
            "kern_workflow": entry.workflow.name,  # what identifies it in any process (`name` is for people)
            "text": text,
            "user": command["user_id"],
            "channel": command["channel_id"],
            "response_url": command.get("response_url"),
            "run_id": new_id(),
            "team": team(),
        }
        job = Job(key, START, payload)
        try:
            await self.jobs.accept_before_ack(job, lambda: self.jobs.launch(job))
        except StoreError as exc:
            await ack(response_type="ephemeral", text=self.jobs.message(job, REFUSED, exc))
            return
        await ack(response_type="ephemeral", text=f"Starting `{ui.escape(name)}`…")  # a repeat: answered the same

    async def help(self, command: str, user: str, channel: str) -> str:
        """Every command with an example, and the workflows `user` may start here with their descriptions."""
        return ui.help_text(command, await self.startable(user, channel))

    async def startable(self, user: str, channel: str) -> list[tuple[str, str]]:
        """The workflows `user` may start in `channel` (name, description), as `/kern help` and `/kern list`
        show them."""
        entries = list(self.registry.entries.values())
        refusals = await asyncio.gather(*(self.access.may_start(e, user, channel) for e in entries))
        return [(e.name, e.description) for e, no in zip(entries, refusals, strict=True) if not no]

    async def _find(self, given: str, user: str, *, cancelling: bool = False) -> RunView | str:
        """The run `user` means by `given` among those they may see (or, `cancelling`, cancel): the others
        are as if they did not exist, the same line answering a run they may not see and one that does not
        exist."""

        async def visible(card: Card) -> bool:
            entry = self.registry.get(card.workflow)
            if entry is None:
                return False
            if await self.access.may_read(entry, card, user) is None:
                return True
            return cancelling and await self.access.may_cancel(entry, card, user) is None

        return await self.runner.presenter.find(given.strip().lower(), visible)  # ids are hex: any case

    # ----- the run card's buttons (same rules as the commands) ---------------------------------------
    async def on_run_status(
        self, ack: Callable[..., Awaitable[Any]], body: dict[str, Any], action: dict[str, Any]
    ) -> None:
        await ack()
        user, channel = body["user"]["id"], (body.get("channel") or {}).get("id", "")
        self.background.spawn(
            self.gateway.tell(channel, user, await self.status(action["value"], user), None, body.get("response_url"))
        )

    async def on_run_cancel(
        self, ack: Callable[..., Awaitable[Any]], body: dict[str, Any], action: dict[str, Any]
    ) -> None:
        await ack()
        user, channel = body["user"]["id"], (body.get("channel") or {}).get("id", "")
        self.background.spawn(self.cancel(action["value"], user, channel, body.get("response_url")))

    async def list_runs(self, user: str, channel: str, response_url: str | None) -> None:
        """`/kern status` without a run id: the runs `user` started, conversation turns included, privately."""
        lines = await self.your_runs.lines(user)
        text = "Your latest runs:\n" + "\n".join(lines) if lines else "You have started no runs here yet."
        await self.gateway.tell(channel, user, text, response_url=response_url)

    async def status(self, run_id: str, user: str) -> str:
        found = await self._find(run_id, user)
        if isinstance(found, str):
            return found
        entry, run = found.entry, found.run
        line = f"`{ui.escape(entry.name)}` run `{run.run_id[:12]}`: {run.status.value.lower()}"
        if entry.conversation:  # a turn of a conversation: what was asked, and where
            card = found.card
            where = "our DM" if card.channel.startswith("D") else f"<#{card.channel}>"
            line += f" (a conversation turn in {where}: {ui.quote(card.input or '', 300)})"
        if run.is_paused and run.step_requirements:
            req = run.step_requirements[-1]
            line += f", waiting at {ui.escape(req.step_name)}: {ui.waiting_for(req)}"
        elif run.is_cancelled:  # kern's reason: "Cancelled by <@U1>" names the canceller, feedback is text
            line += f": {ui.reason_line(ui.truncate(ui.as_text(run.content), 1500))}"
        elif run.content is not None:
            line += f": {ui.quote(run.content, 1500)}"
        return line

    async def cancel(self, run_id: str, user: str, channel: str, response_url: str | None = None) -> None:
        """Cancel a paused or running run (a running one stops at its next step boundary)."""
        found = await self._find(run_id, user, cancelling=True)  # one they may not see: not even a refusal
        if isinstance(found, str):
            await self.gateway.tell(channel, user, found, response_url=response_url)
            return
        entry, card, run_id = found.entry, found.card, found.run.run_id
        refusal = await self.access.may_cancel(entry, card, user)
        if refusal:
            await self.gateway.tell(channel, user, refusal, response_url=response_url)
            return
        ended = _ended(found.run)
        if ended is None:
            try:
                await entry.workflow.acancel_run(run_id, by=user, reason=f"Cancelled by <@{user}>")
            except RunNotPausedError:  # it ended meanwhile
                ended = _ended(await entry.workflow.aget_run(run_id)) or "already ended"
        if ended is not None:
            text = f"Run `{run_id[:12]}` {ended}; nothing to cancel."
            await self.gateway.tell(channel, user, text, response_url=response_url)
            return
        await self.runner.outbox.deliver(run_id)


ENDED = {
    RunStatus.COMPLETED: "already completed",
    RunStatus.CANCELLED: "was already cancelled",
    RunStatus.ERROR: "already failed",
}


def _ended(run: Any) -> str | None:
    """How a run ended ("already completed", ...), or None while it may still be cancelled."""
    return ENDED.get(run.status) if run is not None else None
