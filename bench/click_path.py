"""Walk one click through kern-bot and print the modules it visits (issue 25, "one pass per click").

    python bench/click_path.py              # the route-select click and the vote click, SQLite
    python bench/click_path.py --calls      # also every call between modules, in order
    python bench/click_path.py --strict     # the runners and kern's watchers walked as part of the click

A real bot on a real endpoint, the local Slack stand-in signing and sending the click as Slack would. A
profiler follows every call from one module of `bot` to another made while the click is handled (in the
request's task and the tasks it spawns; not in the outbox's delivery worker, which the click hands its
messages to). A module is *visited* when a call enters it from another module; the click *comes back* to a
module when it enters one it has already visited and left (no frame of it on the stack): the mark of a
flow that goes down and up again instead of checking, deciding, writing and handing to delivery in order.
The walk ends at the hand-off to delivery (`Outbox.deliver`): what the outbox then sends is delivery's
work.

Two things are walked apart (`--strict` walks them with the click, to show what they add):
- Calls into the store's transaction runner (`bot.store.transactions`, every layer's reads and writes go
  through it: a click reads to check and writes to record, so it goes through it twice) are counted as
  calls, not as modules visited, as the foundations (values, pure rendering, the task runner) always are.
- kern's calls back into the bot inside its own transactions (`KERN_WATCHERS`: the outbox and job rows a
  change owes) are each a walk of their own: a come-back is counted within one such call, not against the
  click's (a resumed run commits twice, once as it continues and once where it stops, and each commit owes
  its rows).
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import dis
import sys
import tempfile
import types
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# The foundations layer of tests/test_layering.py (values and pure rendering every layer draws on) and the
# task runner: counted apart, as calls, not as modules visited.
FOUNDATIONS = (
    "bot.blocks",
    "bot.logs",
    "bot.registry",
    "bot.policy",
    "bot.pause_history",
    "bot.notify",
    "bot.config",
    "bot.approvals.types",
    "bot.runs.background",
)
RUNNERS = ("bot.store.transactions",)
KERN_WATCHERS = ("Outbox.record", "Jobs.record")
HAND_OFF = "Outbox.deliver"  # the click hands what it wrote to delivery: what follows is delivery's work
TRACED: contextvars.ContextVar[bool] = contextvars.ContextVar("click_path_traced", default=False)
HANDED: contextvars.ContextVar[bool] = contextvars.ContextVar("click_path_handed", default=False)


@dataclass
class Walk:
    """The calls between modules of one click, in order."""

    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (from module, to module, function)
    came_back: list[tuple[str, str]] = field(default_factory=list)  # (module, function) re-entered after leaving
    foundation_calls: int = 0
    callbacks: list[str] = field(default_factory=list)  # entered from outside the bot (kern's watchers, tasks)

    @property
    def modules(self) -> list[str]:
        seen: list[str] = []
        for _, to, _ in self.calls:
            if to not in seen:
                seen.append(to)
        return seen


def module_of(frame: types.FrameType) -> str:
    return str(frame.f_globals.get("__name__", ""))


RESUME = dis.opmap["RESUME"]


def fresh(frame: types.FrameType) -> bool:
    """Whether a profiler's "call" is a new call, not a coroutine resumed after an await (CPython 3.11+:
    a new frame stands on a `RESUME 0`; a resumed one on `RESUME 1-3`)."""
    code, at = frame.f_code.co_code, frame.f_lasti
    return at < 0 or (code[at] == RESUME and code[at + 1] == 0) or code[at] != RESUME


def is_bot(name: str) -> bool:
    return (name == "bot" or name.startswith("bot.")) and not name.startswith("bot.devslack")


class Tracer:
    """A `sys.setprofile` hook recording module-to-module calls in traced tasks."""

    def __init__(self, start: str, strict: bool = False) -> None:
        self.start = start  # the qualified name of the listener that starts the click
        self.walk = Walk()
        self.visited: set[str] = set()
        self.apart = FOUNDATIONS if strict else FOUNDATIONS + RUNNERS
        self.strict = strict
        self.watcher_visits: dict[int, set[str]] = {}  # a kern watcher's call (its frame's id) -> its own visits

    def __call__(self, frame: types.FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        if not fresh(frame):
            return
        callee = module_of(frame)
        if not is_bot(callee):
            return
        if not TRACED.get():
            if frame.f_code.co_qualname != self.start:
                return
            TRACED.set(True)  # this task and the tasks it spawns from now on
        if HANDED.get():
            return
        caller_frame = frame.f_back  # the nearest bot frame below, past foundations (the task runner)
        while caller_frame is not None and (
            not is_bot(module_of(caller_frame)) or module_of(caller_frame).startswith(self.apart)
        ):
            caller_frame = caller_frame.f_back
        if caller_frame is None and frame.f_code.co_qualname != self.start:
            # kern calling back inside its transaction (what a change owes), or a task started by the event loop
            self.walk.callbacks.append(f"{callee.removeprefix('bot.')}.{frame.f_code.co_qualname}")
            if frame.f_code.co_qualname in KERN_WATCHERS and not self.strict:
                self.watcher_visits[id(frame)] = {callee}
            return
        caller = module_of(caller_frame) if caller_frame is not None else "(entry)"
        if frame.f_code.co_qualname == HAND_OFF:  # (from the outbox itself, too: `Outbox.deliver_after`)
            HANDED.set(True)  # in this task from now on, and the tasks it spawns
            self.walk.calls.append((caller, callee, HAND_OFF))
            return
        if caller == callee:
            return
        if callee.startswith(self.apart) or "__create_fn__" in frame.f_code.co_qualname:  # (a dataclass's own)
            self.walk.foundation_calls += 1
            return
        on_stack, root = False, frame
        back = frame.f_back
        while back is not None:
            if module_of(back) == callee:
                on_stack = True
            if is_bot(module_of(back)):
                root = back
            back = back.f_back
        visited = self.watcher_visits.get(id(root), self.visited)  # within a kern watcher's call: its own
        if callee in visited and not on_stack:
            self.walk.came_back.append((callee, frame.f_code.co_qualname))
        visited.add(callee)
        self.walk.calls.append((caller, callee, frame.f_code.co_qualname))


async def traced(
    start: str, click: Callable[[], Awaitable[Any]], settle: Callable[[], Awaitable[None]], strict: bool = False
) -> Walk:
    tracer = Tracer(start, strict)
    sys.setprofile(tracer)
    try:
        await click()
        await settle()
    finally:
        sys.setprofile(None)
    return tracer.walk


async def walks(strict: bool = False) -> dict[str, Walk]:
    from aiohttp import web

    from bot import blocks as ui
    from bot.devslack import DevSlack
    from bot.examples import example_workflows
    from bot.policy import Approvers
    from bot.registry import BotWorkflow, Registry
    from bot.slack.app import build_bot, make_client
    from bot.slack.server import create_web_app
    from kern.db.sqlite import SqliteDb
    from kern.workflow import Step, Workflow

    secret = "click-path-secret"
    found: dict[str, Walk] = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = SqliteDb(db_file=str(Path(tmp) / "kern.db"))
        async with DevSlack(secret) as slack:
            quorum = BotWorkflow(
                Workflow(
                    name="quorum", steps=[Step(name="ship", executor=lambda s: "shipped", requires_confirmation=True)]
                ),
                name="quorum",
                approvers=Approvers(users=("U01", "U02", "U03"), required=2),
            )
            bot = build_bot(
                Registry([*example_workflows(), quorum], db), make_client(slack.token, slack.api_url), secret
            )
            runner = web.AppRunner(create_web_app(bot, sweep_interval=0, ops=("127.0.0.1", 0)))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            slack.bot_endpoint = f"http://127.0.0.1:{port}/slack/events"

            async def settle() -> None:
                await asyncio.sleep(0.05)
                await bot.background.idle(15)
                await asyncio.sleep(0.2)

            try:
                await slack.command("run triage login broken", user="U1")
                await settle()
                state = {ui.ROUTE_BLOCK: {ui.ROUTE_PICK: {"type": "static_select", "selected_option": {"value": "0"}}}}
                found["route-select"] = await traced(
                    "Interactions.on_route_go", lambda: slack.click(ui.ROUTE_GO, state=state, user="U1"), settle, strict
                )
                await slack.command("run quorum", user="U1")
                await settle()
                found["vote (1 of 2)"] = await traced(
                    "Interactions.button.<locals>.on_click", lambda: slack.click(ui.CONFIRM, user="U01"), settle, strict
                )
                found["vote (2 of 2)"] = await traced(
                    "Interactions.button.<locals>.on_click", lambda: slack.click(ui.CONFIRM, user="U02"), settle, strict
                )
            finally:
                await bot.background.idle(10)
                await runner.cleanup()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", action="store_true", help="print every call between modules")
    parser.add_argument("--strict", action="store_true", help="walk the runners and kern's watchers with the click")
    args = parser.parse_args()
    apart = FOUNDATIONS if args.strict else FOUNDATIONS + RUNNERS
    for name, walk in asyncio.run(walks(args.strict)).items():
        print(
            f"{name}: {len(walk.modules)} modules, {len(walk.calls)} calls between modules, "
            f"{len(walk.came_back)} coming back to a module it had left "
            f"(+{walk.foundation_calls} calls into {', '.join(apart)})"
        )
        print("   modules, in order: " + " > ".join(m.removeprefix("bot.") for m in walk.modules))
        if walk.came_back:
            print("   came back to: " + ", ".join(f"{m.removeprefix('bot.')}.{f}" for m, f in walk.came_back))
        if walk.callbacks:
            print("   called in from kern or the event loop: " + ", ".join(walk.callbacks))
        if args.calls:
            for caller, callee, function in walk.calls:
                print(f"     {caller.removeprefix('bot.')} -> {callee.removeprefix('bot.')}.{function}")


if __name__ == "__main__":
    main()
