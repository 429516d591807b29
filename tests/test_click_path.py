"""One pass per click (issue 25, item 3), walked with bench/click_path.py: a click is checked, decided and
written with what it owes Slack, then handed to delivery, without coming back to a module it left; nothing
is drawn or sent to Slack before the hand-off. Walked strictly (the store's transaction runner and kern's
watchers with the click), it comes back only to those."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
SENDS = ("bot.slack.gateway", "bot.slack.pacing", "bot.delivery.presenter")


def click_path() -> ModuleType:
    spec = importlib.util.spec_from_file_location("click_path", ROOT / "bench" / "click_path.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["click_path"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


async def test_route_select_and_vote_clicks_hand_off_before_anything_is_sent() -> None:
    walks = await click_path().walks()
    assert set(walks) == {"route-select", "vote (1 of 2)", "vote (2 of 2)"}
    for name, walk in walks.items():
        modules = walk.modules
        assert modules[0] == "bot.surfaces.interactions", name  # the click's listener
        assert "bot.approvals.access" in modules, name  # checked
        assert "bot.delivery.outbox" in modules, name  # written with what it owes, handed to delivery
        assert not set(SENDS) & set(modules), (name, modules)  # nothing drawn or sent before the hand-off
        assert modules.index("bot.approvals.access") < modules.index("bot.delivery.outbox"), name
        assert any(callee == "bot.delivery.outbox" and f == "Outbox.deliver" for _, callee, f in walk.calls), name
        assert walk.came_back == [], (name, walk.came_back)  # one pass
        checked, written = modules.index("bot.approvals.access"), modules.index("bot.store.outbox_rows")
        assert checked < written, (name, modules)
    assert "bot.approvals.ballots" in walks["vote (1 of 2)"].modules
    assert "bot.runs.runner" not in walks["vote (1 of 2)"].modules  # counted, not decided: the run stays put
    assert "bot.runs.runner" in walks["vote (2 of 2)"].modules  # the deciding vote continues the run


async def test_walked_strictly_a_click_comes_back_only_to_the_transaction_runner_and_kerns_watchers() -> None:
    walks = await click_path().walks(strict=True)
    for name, walk in walks.items():
        for module, function in walk.came_back:
            assert module == "bot.store.transactions" or function == "OutboxRows.owe_all", (name, module, function)
    # what the strict walk adds: a vote's second transaction (its check read first), a resumed run's second
    # commit (kern's watcher owes its rows again)
    assert ("bot.store.transactions", "insert_once") in walks["vote (1 of 2)"].came_back
    assert ("bot.store.outbox_rows", "OutboxRows.owe_all") in walks["route-select"].came_back
