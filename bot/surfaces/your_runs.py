"""The runs a person started, newest first, one line each: the App Home's "Your runs" and `/kern status`
without a run id. A turn of a conversation (`BotAgent`) is a run too: its line says what the person asked and
links to its thread (its card row's ts is the thread's), where a workflow run's links to its run card."""

from __future__ import annotations

from bot import blocks as ui
from bot.delivery.presenter import Presenter, card_view
from bot.registry import Registry
from bot.slack.workspaces import team
from bot.store import BotStore
from bot.surfaces.home_queries import HomeQueries
from kern.exceptions import CorruptRunError, RunNotFoundError

UNREADABLE = ":warning: Cannot be read (its stored state is damaged; an operator was told in the log)"


class YourRuns:
    """Lists a person's runs (with links, best effort: a link Slack does not give is left out)."""

    def __init__(self, registry: Registry, store: BotStore, presenter: Presenter) -> None:
        self.registry = registry
        self.store = store
        self.presenter = presenter
        self.queries = HomeQueries(store)

    async def lines(self, user: str) -> list[str]:
        """One line per run `user` started in the current workspace (at most `home_queries.MOST_RUNS`)."""
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
            if entry.conversation:
                lines.append(ui.turn_line(card.run_id, card.input or "", card.channel, status, link))
            else:
                lines.append(ui.run_line(card.run_id, entry.name, card.channel, status, link))
        return lines
