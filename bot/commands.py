"""`/kern`: run, list, status, cancel, help. Acked at once; runs go on in the background."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bot import blocks as ui
from bot.runner import Runner
from kern.exceptions import RunNotFoundError, RunNotPausedError

USAGE = (
    "Usage: `/kern run <workflow> [input]` · `/kern list` · `/kern status <run>` · `/kern cancel <run>` · `/kern help`"
)


class Commands:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.registry = runner.registry

    async def on_command(self, ack: Callable[..., Awaitable[Any]], command: dict[str, Any]) -> None:
        text = (command.get("text") or "").strip()
        user, channel = command["user_id"], command["channel_id"]
        verb, _, rest = text.partition(" ")
        rest = rest.strip()
        if verb == "run":
            name, _, given = rest.partition(" ")
            entry = self.registry.get(name)
            if entry is None:
                known = ", ".join(f"`{n}`" for n in self.registry.entries) or "none"
                await ack(
                    response_type="ephemeral",
                    text=f"Unknown workflow `{ui.escape(name or '?')}`. Workflows: {known}. {USAGE}",
                )
                return
            await ack(response_type="ephemeral", text=f"Starting `{entry.name}`…")
            self.runner.spawn(self.runner.start(entry, given.strip(), user, channel, command.get("response_url")))
        elif verb == "list":
            lines = [
                f"• `{e.name}`: {ui.escape(e.description or 'no description')}" for e in self.registry.entries.values()
            ]
            await ack(response_type="ephemeral", text="Workflows you can run:\n" + "\n".join(lines))
        elif verb == "status" and rest:
            await ack(response_type="ephemeral", text=await self.status(rest))
        elif verb == "cancel" and rest:
            await ack(response_type="ephemeral", text=f"Cancelling `{ui.escape(rest)}`…")
            self.runner.spawn(self.cancel(rest, user, channel, command.get("response_url")))
        elif verb in ("", "help"):
            await ack(response_type="ephemeral", text=USAGE)
        else:
            await ack(response_type="ephemeral", text=f"I don't know `{ui.escape(text[:100])}`. {USAGE}")

    async def _find(self, run_id: str) -> tuple[Any, Any, Any] | None:
        card = await self.runner.store.card(run_id)
        entry = self.registry.get(card.workflow) if card else None
        if card is None or entry is None:
            return None
        try:
            run = await entry.workflow.aget_run(run_id)
        except RunNotFoundError:
            return None
        return entry, card, run

    async def status(self, run_id: str) -> str:
        found = await self._find(run_id)
        if found is None:
            return f"No run `{ui.escape(run_id)}` started from Slack."
        entry, _card, run = found
        line = f"`{entry.name}` run `{run_id}`: {run.status.value.lower()}"
        if run.is_paused:
            req = run.step_requirements[-1]
            line += f", waiting at {req.step_name} ({req.kind.replace('_', ' ')})"
        elif run.content is not None:
            line += f": {ui.quote(run.content, 1500)}"
        return line

    async def cancel(self, run_id: str, user: str, channel: str, response_url: str | None = None) -> None:
        found = await self._find(run_id)
        if found is None:
            await self.runner.tell(
                channel, user, f"No run `{ui.escape(run_id)}` started from Slack.", response_url=response_url
            )
            return
        entry, card, run = found
        try:
            cancelled = await entry.workflow.acancel_run(run_id, by=user, reason=f"Cancelled by <@{user}>")
        except RunNotPausedError as exc:
            await self.runner.tell(channel, user, f"Cannot cancel: {exc}", response_url=response_url)
            return
        if run.step_requirements:
            await self.runner.close_pause(
                entry, run.step_requirements[-1], user, f":no_entry: Run cancelled by <@{user}>"
            )
        await self.runner.present(entry, card, cancelled)
