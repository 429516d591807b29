"""The App Home tab: each person's inbox of pauses waiting on them, and the runs they started.

Published with views.publish when the person opens the tab (`app_home_opened`) or turns a page, and
refreshed, best effort and in the background, for the people concerned when a pause it could show
opens, changes (handed over, escalated) or closes: everyone whose Home listed it, so none keeps live
buttons for a decided pause (called from the outbox's delivery, so a click's ack never waits for it).

Which pauses wait on a person is decided over every open pause (a light read, bot/surfaces/home_queries.py), by
the rules as `Access` answers them, asked once per combination the rules depend on; only the pauses
shown (as many as fit in Slack's 100 blocks) are read in full and drawn. The count is exact however many
pauses are open.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

from bot import blocks as ui
from bot.approvals.access import Access, is_private
from bot.approvals.grants import active_grants, grant_line, revoke_grant
from bot.delivery.presenter import Presenter, RunView
from bot.pause_history import Notes
from bot.registry import BotWorkflow, Registry
from bot.runs.background import Background
from bot.slack.gateway import SlackGateway
from bot.slack.workspaces import team
from bot.store import BotStore, Card, Delivery
from bot.store.pause_notes import read_notes
from bot.surfaces.home_queries import HomeQueries, OpenPause
from bot.surfaces.your_runs import YourRuns
from kern.db.base import StoredRun
from kern.exceptions import CorruptRunError
from kern.run import requirement as kinds
from kern.run.base import RunStatus
from kern.run.requirement import StepRequirement
from kern.workflow.stored_runs import read_pause, read_run

log = logging.getLogger("kern_bot")
Ack = Callable[..., Awaitable[Any]]
# Open pauses decided on between two chances for the event loop to serve others (a click's ack would
# otherwise wait behind a whole Home); a pause drawn gives it one each.
_BETWEEN_YIELDS = 100
_READ_AT_ONCE = 12  # pauses read in full (their runs, notes) per query while filling the Home


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
    stored: StoredRun | None = None  # its run as stored (what the pause is about is drawn from it)


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
        self.your_runs = YourRuns(registry, store, presenter)
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
        """The outbox's listener: a pause posted, changed (handed over, escalated, voted on) or closed
        changes the Home of those it concerns."""
        touched = {
            d.message.requirement_id
            for d in done
            if d.message.kind in ("pause", "redraw", "close") and not d.dropped and d.message.requirement_id
        }
        if touched:
            self.background.spawn(self.refresh(view, touched))

    # ----- publishing ------------------------------------------------------------------------------
    async def show(self, user: str, start: int | None = None) -> None:
        """Publish `user`'s Home from place `start` of the pauses waiting on them (None: where they were)."""
        if start is None:
            start = (await self.queries.viewers(team())).get(user, 0)
        mine = await self.waiting_on(user)
        start = max(0, start)
        if start >= len(mine):  # fewer wait now: the last of them
            start = min((i for i, _ in await self._fill(mine, range(len(mine) - 1, -1, -1))), default=0)
        shown = await self._fill(mine, range(start, len(mine)))
        previous = min((i for i, _ in await self._fill(mine, range(start - 1, -1, -1))), default=0) if start else None
        runs, grants = await self._runs(user), await self._grants(user)
        view = ui.home_view([b for _, b in shown], len(mine), start, previous, runs, grants)
        if await self.gateway.call("views_publish", user_id=user, view=view) is not None:
            await self.queries.viewed(user, start, team())

    async def refresh(self, changed: RunView, pauses: Collection[str] = ()) -> None:
        """Republish the Home of everyone who opened theirs and whom this run concerns: its starter, those
        who may answer its pauses by the workflow's rules, and whoever may answer (or, once decided, could
        answer) one of `pauses` (requirement ids): by its step's rules, as its escalation group once it
        escalated, or as someone it was handed to. So every Home that listed a pause is redrawn when it is
        decided. Best effort: a failure is logged."""
        try:
            entry, card = changed.entry, changed.card
            reqs = [r for r in changed.run.step_requirements if r.requirement_id in pauses]
            notes = await read_notes(self.store.db, [r.requirement_id for r in reqs]) if reqs else {}
            viewers = await self.queries.viewers(card.team_id)

            async def concerned(user: str) -> bool:
                if user == card.started_by or await self.access.may_answer(entry, card, user) is None:
                    return True
                for req in reqs:
                    refusal = await self.access.may_answer_pause(
                        entry, card, user, req, notes=notes[req.requirement_id]
                    )
                    if refusal is None:
                        return True
                return False

            for user in viewers:
                if await concerned(user):
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

    async def waiting_on(self, user: str) -> list[tuple[BotWorkflow, OpenPause]]:
        """Every open pause `user` may answer, newest first: all open pauses read lightly in one query, each
        decided by the rules (asked once per workflow and what they depend on, so a group or a channel is
        asked of Slack once); the pauses handed to or by them, or escalated, are read in full (together)
        and decided with what was done to them (`Access.may_answer_pause`)."""
        step_rules = [e.name for e in self.registry.entries.values() if e.step_approvers]
        rows = await self.queries.open_pauses(team(), user, step_rules)
        known: dict[tuple[str, str, str, bool], str | None] = {}
        decided: list[tuple[BotWorkflow, OpenPause, str | None]] = []
        for n, row in enumerate(rows, 1):
            entry = self.registry.get(row.card.workflow)
            if entry is not None:
                decided.append((entry, row, await self._by_rules(entry, row, user, known)))
            if n % _BETWEEN_YIELDS == 0:
                await asyncio.sleep(0)
        touched = [(entry, row, refusal) for entry, row, refusal in decided if row.touched]
        allowed = {row.requirement_id for _, row, refusal in decided if not row.touched and refusal is None}
        for at in range(0, len(touched), _BETWEEN_YIELDS):
            chunk = touched[at : at + _BETWEEN_YIELDS]
            for (entry, row, refusal), waiting in zip(
                chunk, await self._read([(e, r) for e, r, _ in chunk]), strict=True
            ):
                if (
                    waiting is not None
                    and (await self.access.may_answer_pause(entry, row.card, user, waiting.req, refusal, waiting.notes))
                    is None
                ):
                    allowed.add(row.requirement_id)
        return [(entry, row) for entry, row, _ in decided if row.requirement_id in allowed]

    async def _by_rules(
        self, entry: BotWorkflow, row: OpenPause, user: str, known: dict[tuple[str, str, str, bool], str | None]
    ) -> str | None:
        """Why `user` may not answer this pause by its step's rules (`Access.may_answer`), or None; asked
        once per workflow and what the rules depend on (the step's own rules, the run's channel, whether
        `user` started it)."""
        rules = entry.approvers_for(row.step)
        channel = row.card.channel
        key = (
            entry.name,
            row.step if row.step is not None and row.step in entry.step_approvers else "",
            channel if rules.channel_members or is_private(channel) else "",
            row.card.started_by == user,
        )
        if key not in known:
            known[key] = await self.access.may_answer(entry, row.card, user, row.step)
        return known[key]

    async def _read(self, pauses: list[tuple[BotWorkflow, OpenPause]]) -> list[Waiting | None]:
        """These pauses read in full (their runs in one query, their notes in another); None for one its run
        no longer waits at."""
        stored = await self.store.db.load_runs([row.card.run_id for _, row in pauses])
        found: list[Waiting | None] = []
        for entry, row in pauses:
            record = stored.get(row.card.run_id)
            active = _active_pause(record.output) if record is not None else None
            if (
                active is not None
                and active.get("requirement_id") == row.requirement_id
                and active.get("status", "pending") == "pending"  # the stored form's default, as from_dict reads it
            ):
                try:
                    found.append(Waiting(entry, row.card, read_pause(row.card.run_id, active), Notes(), record))
                except CorruptRunError as exc:  # one unreadable run is left out, not everyone's Home
                    self.store.db.quarantine.hold(exc)
                    found.append(None)
            else:
                found.append(None)
        notes = await read_notes(self.store.db, [w.req.requirement_id for w in found if w is not None])
        for w in found:
            if w is not None:
                w.notes = notes[w.req.requirement_id]
        return found

    async def _fill(self, mine: list[tuple[BotWorkflow, OpenPause]], places: range) -> list[tuple[int, ui.Blocks]]:
        """The pauses at `places` of `mine`, in that order, drawn, as many as fit in the Home (at least one):
        (place, blocks) each."""
        drawn: list[tuple[int, ui.Blocks]] = []
        used = 0
        for at in range(0, len(places), _READ_AT_ONCE):
            chunk = places[at : at + _READ_AT_ONCE]
            for place, waiting in zip(chunk, await self._read([mine[i] for i in chunk]), strict=True):
                if waiting is None:
                    continue
                blocks = await self._pause_blocks(waiting)
                await asyncio.sleep(0)  # a drawing takes a while: clicks are acked in between
                if drawn and used + len(blocks) + 1 > ui.PAUSE_BLOCKS:
                    return drawn
                drawn.append((place, blocks))
                used += len(blocks) + 1
        return drawn

    async def _pause_blocks(self, waiting: Waiting) -> ui.Blocks:
        decided = None
        if waiting.req.kind == kinds.EXECUTOR:
            decided = {
                i: d["summary"] for i, d in (await self.store.tool_decisions(waiting.req.requirement_id)).items()
            }
        notes = waiting.notes.text(waiting.entry.approvers_for(waiting.req.step_name))
        run = None
        if waiting.stored is not None:
            try:
                run = read_run(waiting.stored)
            except CorruptRunError as exc:  # its pause was read: drawn without what it is about
                self.store.db.quarantine.hold(exc)
        _, blocks = self.presenter.pause_view(
            waiting.entry, waiting.req, decided, waiting.card.started_by, notes or None, run
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
        return await self.your_runs.lines(user)
