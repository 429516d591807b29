"""kern-bot under load: concurrent clicks through the real HTTP endpoint against the local Slack (bot.devslack).

    python bench/bot_load.py [--runs 200] [--db sqlite|postgres]

The bot runs as its own `kern-bot serve` process (as in production); this process is Slack: the Web API
stand-in and the load generator. It starts --runs paused runs of a three-gate function workflow, then
clicks Approve on all of them at once (all interactions in flight together), and reports the HTTP ack
latency of the clicks (Slack gives up at 3000 ms) and the latency from a click to the next pause card
being posted in that run's thread.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot import blocks as ui  # noqa: E402
from bot.devslack import DevSlack  # noqa: E402
from bot.registry import BotWorkflow  # noqa: E402
from kern.workflow import Step, Workflow  # noqa: E402

SECRET = "bench-secret"

# What the bot process serves (KERN_WORKFLOWS=bench.bot_load:WORKFLOWS).
WORKFLOWS = [
    BotWorkflow(
        Workflow(
            name="load",
            steps=[
                Step(name="first", executor=lambda s: "first", requires_confirmation=True),
                Step(name="second", executor=lambda s: "second", requires_confirmation=True),
                Step(name="third", executor=lambda s: "third", requires_confirmation=True),
            ],
        ),
        name="load",
    )
]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def main(runs: int, db_kind: str) -> None:
    db = (
        str(Path(tempfile.mkdtemp()) / "bench.db")
        if db_kind == "sqlite"
        else os.environ.get("KERN_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    )
    port = 3400 + os.getpid() % 500
    async with DevSlack(SECRET) as slack:
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.api_url,
            "KERN_DB": db,
            "KERN_WORKFLOWS": "bench.bot_load:WORKFLOWS",
            "PYTHONPATH": str(ROOT),
        }
        bot = subprocess.Popen(  # noqa: ASYNC220 - started once, before any measurement
            [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        slack.bot_endpoint = f"http://127.0.0.1:{port}/slack/events"
        try:
            await wait_healthy(f"http://127.0.0.1:{port}/health", bot)
            await measure(slack, runs, db_kind)
        finally:
            bot.terminate()
            try:
                bot.wait(15)
            except subprocess.TimeoutExpired:
                bot.kill()


async def wait_healthy(url: str, bot: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            if bot.poll() is not None:
                raise SystemExit("kern-bot exited during start-up")
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise SystemExit("kern-bot did not come up")


async def until_quiet(slack: DevSlack, count: Callable[[], int], expected: int, within: float = 120) -> None:
    deadline = time.monotonic() + within
    while count() < expected:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {count()} of {expected} messages arrived")
        await asyncio.sleep(0.01)


async def measure(slack: DevSlack, runs: int, db_kind: str) -> None:
    started = time.perf_counter()
    command_acks = [r[2] for r in await asyncio.gather(*(slack.command("run load") for _ in range(runs)))]
    await until_quiet(slack, lambda: sum(1 for m in slack.messages.values() if m.thread_ts and "first" in m.text), runs)
    setup_s = time.perf_counter() - started
    cards = [m for m in slack.messages.values() if m.thread_ts is None]
    first_pauses = {m.thread_ts: m for m in slack.messages.values() if m.thread_ts and "first" in m.text}
    assert len(cards) == runs and len(first_pauses) == runs, (len(cards), len(first_pauses))

    clicked_at: dict[str, float] = {}
    # Build and sign every click first, so the load generator's own work is not timed as the bot's.
    prepared = []
    for card in cards:
        body = slack.interaction_body(slack.click_payload(ui.CONFIRM, stale=slack.find(ui.CONFIRM, thread_ts=card.ts)))
        prepared.append((card.ts, body, slack.signed(body)))
    assert slack.session is not None
    session = slack.session

    async def click(card_ts: str, body: bytes, headers: dict[str, str]) -> float:
        clicked_at[card_ts] = start = time.perf_counter()
        async with session.post(slack.bot_endpoint, data=body, headers=headers) as resp:
            assert resp.status == 200
        return time.perf_counter() - start

    acks = await asyncio.gather(*(click(ts, body, headers) for ts, body, headers in prepared))
    await until_quiet(
        slack, lambda: sum(1 for m in slack.messages.values() if m.thread_ts and "second" in m.text), runs
    )
    next_card = []
    for card in cards:
        second = [m for m in slack.thread(card.ts) if "second" in m.text]
        assert second, "no next pause card"
        next_card.append(second[0].posted_at - clicked_at[card.ts])
    # one click at a time: the latency a person sees
    single: list[float] = []
    for card in cards[:20]:
        stale = slack.find(ui.CONFIRM, thread_ts=card.ts)
        start = time.perf_counter()
        await slack.click(ui.CONFIRM, stale=stale)
        await until_quiet(slack, lambda c=card: sum(1 for m in slack.thread(c.ts) if "third" in m.text), 1, within=30)
        single.append(time.perf_counter() - start)
    errors = [c for c in slack.calls if not c[2].get("ok")]

    ms = lambda xs: [x * 1000 for x in xs]  # noqa: E731
    acks_ms, next_ms, cmd_ms, single_ms = ms(acks), ms(next_card), ms(command_acks), ms(single)
    print(
        f"kern-bot load, {runs} runs on {db_kind}; setup (commands to first pause) {setup_s:.1f} s; "
        f"Slack errors: {len(errors)}"
    )
    print(f"{'measure':<34}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}")
    for name, values in (
        ("slash command ack (ms)", cmd_ms),
        (f"click ack, {runs} in flight (ms)", acks_ms),
        (f"click to next card, {runs} at once (ms)", next_ms),
        ("click to next card, one click (ms)", single_ms),
    ):
        print(
            f"{name:<34}{statistics.median(values):>9.1f}{pct(values, 0.9):>9.1f}{pct(values, 0.99):>9.1f}"
            f"{max(values):>9.1f}"
        )
    print(
        f"bot_load {db_kind}: ack_p50_ms={statistics.median(acks_ms):.1f} ack_p99_ms={pct(acks_ms, 0.99):.1f} "
        f"next_card_median_ms={statistics.median(single_ms):.1f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.db))
