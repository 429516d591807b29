"""The App Home tab: each person's inbox of pauses waiting on them, and the runs they started.

Published with views.publish when the person opens the tab (`app_home_opened`) or turns a page, and
refreshed, best effort and in the background, for the people concerned when a pause it could show
opens or closes (called from the outbox's delivery, so a click's ack never waits for it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot import blocks as ui
from bot.access import Access
from bot.background import Background
from bot.gateway import SlackGateway
from bot.grants import active_grants, grant_line, revoke_grant
from bot.home_queries import HomeQueries
from bot.pause_notes import Notes, read_notes
from bot.presenter import Presenter, RunView, card_view
from bot.registry import BotWorkflow, Registry
from bot.store import BotStore, Card, Delivery
from bot.teams import team
from kern.exceptions import CorruptRunError, RunNotFoundError
from kern.run import requirement as kinds
from kern.run.base import RunStatus
from kern.run.requirement import StepRequirement
from kern.workflow.stored_runs import read_pause

log = logging.getLogger("kern_bot")
Ack = Callable[..., Awaitable[Any]]
# Pauses looked at (and drawn) between two chances for the event loop to serve others: a click's ack
# would otherwise wait behind a whole Home.
_BETWEEN_YIELDS = 10
UNREADABLE = ":warning: Cannot be read (its stored state is damaged; an operator was told in the log)"


def _active_pause(output: dict[str, Any]) -> dict[str, Any] | None:
    """The stored form of the pause a stored run waits at (its last requirement), or None if it does not wait."""
    if output.get("status") != RunStatus.PAUSED.value:
        return None
    history = output.get("step_requirements") or []
    return history[-1] if history else None


@dataclass
class Waiting:
    """An open pause the Home can show: its run's workflow entry and card, the requirement, and what was
    done to it so far."""

    entry: BotWorkflow
    card: Card
    req: StepRequirement
    notes: Notes


class Home:
    """Publishes each person's Home tab."""

    def __init__(
        self,
        registry: Registry,
        store: BotStore,
        presenter: Presenter,
        access: Access,
        gateway: SlackGateway,
        background: Background,
    ) -> None:
        self.registry = registry
        self.store = store
        self.presenter = presenter
        self.access = access
        self.gateway = gateway
        self.background = background
        self.queries = HomeQueries(store)
        # (team, user) whose Home is being republished, and those that changed since their republish began
        self._publishing: set[tuple[str, str]] = set()
        self._changed: set[tuple[str, str]] = set()

    # ----- listeners -------------------------------------------------------------------------------
    async def on_home_opened(self, event: dict[str, Any]) -> None:
        """app_home_opened (acked by Bolt): publish the tab, in the background."""
        if event.get("tab", "home") == "home":
            self.background.spawn(self.show(event["user"]))

    async def on_page(self, ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        page = int(action["value"]) if str(action.get("value", "")).isdigit() else 0
        self.background.spawn(self.show(body["user"]["id"], page))

    def republish(self, user: str) -> None:
        """Publish `user`'s Home again, in the background (what they clicked on it was out of date)."""
        self.background.spawn(self.show(user))

    def on_delivered(self, view: RunView, done: list[Delivery]) -> None:
        """The outbox's listener: a pause posted or closed changes the Home of those it concerns."""
        if any(d.message.kind in ("pause", "close") and not d.dropped for d in done):
            self.background.spawn(self.refresh(view))

    # ----- publishing ------------------------------------------------------------------------------
    async def show(self, user: str, page: int | None = None) -> None:
        """Publish `user`'s Home at `page` (None: the page they were on)."""
        if page is None:
            page = (await self.queries.viewers(team())).get(user, 0)
        waiting = await self.waiting()
        answers: dict[tuple[str, str, str, bool], str | None] = {}
        rendered = []
        for n, pause in enumerate(waiting, 1):
            if await self._may_answer(pause, user, answers):
                rendered.append(await self._pause_blocks(pause))
            if n % _BETWEEN_YIELDS == 0:
                await asyncio.sleep(0)  # 200 pauses take tens of ms: clicks are acked in between
        view = ui.home_view(rendered, page, await self._runs(user), await self._grants(user))
        if await self.gateway.call("views_publish", user_id=user, view=view) is not None:
            await self.queries.viewed(user, page, team())

    async def refresh(self, changed: RunView) -> None:
        """Republish the Home of everyone who opened theirs and whom this run concerns: its starter and
        those who may answer its pauses. Best effort: a failure is logged."""
        try:
            viewers = await self.queries.viewers(changed.card.team_id)
            concerned = [
                user
                for user in viewers
                if user == changed.card.started_by
                or await self.access.may_answer(changed.entry, changed.card, user) is None
            ]
            for user in concerned:
                self._republish_soon(user)
        except Exception:  # never let a Home refresh break delivery; the next open shows it anyway
            log.exception("App Home refresh failed")

    def _republish_soon(self, user: str) -> None:
        """Republish `user`'s Home, coalesced: one republish at a time per person, and one more after it if
        anything changed meanwhile. A burst of clicks (each closing a pause and posting the next) then
        costs each viewer a few republishes, not one per pause posted or closed."""
        key = (team(), user)
        self._changed.add(key)
        if key not in self._publishing:
            self._publishing.add(key)
            self.background.spawn(self._republish(key))

    async def _republish(self, key: tuple[str, str]) -> None:
        try:
            while key in self._changed:
                self._changed.discard(key)  # what changes from here on is republished once more
                try:
                    await self.show(key[1])
                except Exception:  # best effort, like every refresh: the next change or open shows it
                    log.exception("App Home refresh failed")
        finally:
            self._publishing.discard(key)

    async def waiting(self) -> list[Waiting]:
        """Every open pause the Home can show (its run still waits at it), newest first. The runs and the
        pauses' notes are read in one query and one transaction, whatever the number of pauses."""
        opened = [(p, c, e) for p, c in await self.queries.open_pauses(team()) if (e := self.registry.get(c.workflow))]
        stored = await self.store.db.load_runs([card.run_id for _, card, _ in opened])
        found = []
        for pause, card, entry in opened:
            row = stored.get(card.run_id)
            active = _active_pause(row.output) if row is not None else None
            # Only the pause shown is read into objects: a run's whole history is not needed here.
            if (
                active is not None
                and active.get("requirement_id") == pause.requirement_id
                and active.get("status", "pending") == "pending"  # the stored form's default, as from_dict reads it
            ):
                try:
                    found.append((entry, card, read_pause(card.run_id, active)))
                except CorruptRunError as exc:  # one unreadable run is left out, not everyone's Home
                    self.store.db.quarantine.hold(exc)
        notes = await read_notes(self.store.db, [req.requirement_id for _, _, req in found])
        return [Waiting(entry, card, req, notes[req.requirement_id]) for entry, card, req in found]

    async def _may_answer(
        self, waiting: Waiting, user: str, known: dict[tuple[str, str, str, bool], str | None]
    ) -> bool:
        """Whether `user` may answer this pause; asked once per workflow and what the rules depend on (the
        run's channel, whether `user` started it), so a page of one group's pauses asks Slack once."""
        rules = waiting.entry.approvers_for(waiting.req.step_name)
        key = (
            waiting.entry.name,
            waiting.req.step_name if waiting.req.step_name in waiting.entry.step_approvers else "",
            waiting.card.channel if rules.channel_members else "",
            waiting.card.started_by == user,
        )
        if key not in known:
            known[key] = await self.access.may_answer(waiting.entry, waiting.card, user, waiting.req.step_name)
        # the rules' answer, then what was done to this pause (handed to them, escalated to their group)
        refusal = await self.access.may_answer_pause(
            waiting.entry, waiting.card, user, waiting.req, known[key], waiting.notes
        )
        return refusal is None

    async def _pause_blocks(self, waiting: Waiting) -> ui.Blocks:
        decided = None
        if waiting.req.kind == kinds.EXECUTOR:
            decided = {
                i: d["summary"] for i, d in (await self.store.tool_decisions(waiting.req.requirement_id)).items()
            }
        notes = waiting.notes.text(waiting.entry.approvers_for(waiting.req.step_name))
        _, blocks = self.presenter.pause_view(
            waiting.entry, waiting.req, decided, waiting.card.started_by, notes or None
        )
        where = f"Run `{waiting.card.run_id[:12]}` in <#{waiting.card.channel}>"
        return [*blocks, ui.context(where)]

    async def may_revoke(self, grant: dict[str, Any], user: str) -> bool:
        """Who may revoke a standing approval: whoever gave it, and those who may answer its step's pauses
        (of its run, for a run's grant)."""
        entry = self.registry.get(grant["workflow"])
        if entry is None:
            return False
        if grant["granted_by"] == user:
            return True
        card = await self.store.card(grant["run_id"], team=team()) if grant["run_id"] else None
        card = card or Card(run_id="", workflow=entry.name, channel="", ts="", started_by="")
        return await self.access.may_answer(entry, card, user, grant.get("step_name")) is None

    async def _grants(self, user: str) -> list[tuple[str, str]]:
        shown = []
        for grant in await active_grants(self.store.db, team=team()):
            if await self.may_revoke(grant, user):
                shown.append((grant["id"], grant_line(grant)))
        return shown

    async def on_revoke(self, ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        """Revoke from the Home: checked again, recorded (audit), and the Home shown again."""
        await ack()
        self.background.spawn(self._revoke(body["user"]["id"], action["value"]))

    async def _revoke(self, user: str, grant_id: str) -> None:
        grant = next((g for g in await active_grants(self.store.db, team=team()) if g["id"] == grant_id), None)
        if grant is not None and await self.may_revoke(grant, user):
            await revoke_grant(self.store.db, grant_id, user)
        await self.show(user)

    async def _runs(self, user: str) -> list[str]:
        lines = []
        for card in await self.queries.cards_started_by(user, team()):
            entry = self.registry.get(card.workflow)
            if entry is None:
                continue
            try:
                run = await entry.workflow.aget_run(card.run_id)
            except RunNotFoundError:
                run = None
            except CorruptRunError as exc:
                self.store.db.quarantine.hold(exc)
                lines.append(ui.run_line(card.run_id, entry.name, card.channel, UNREADABLE, None))
                continue
            status = card_view(entry, card, run).status if run is not None else ":hourglass: Starting…"
            link = await self.presenter.card_link(card, must=False) if card.ts else None
            lines.append(ui.run_line(card.run_id, entry.name, card.channel, status, link))
        return lines
