"""kern-bot in conversation: streamed answers through the real endpoint, against the local Slack and the scripted
model (no LLM).

    python bench/conversation.py [--conversations 50] [--latency 20] [--db sqlite|postgres]

Processes as in production: the bot (`kern-bot serve`), Slack's Web API (the stand-in, in this process), the
scripted model (a thread of this process, streaming its answer a few characters every PIECE_DELAY seconds) and
Slack's click sender (bench/bot_load.py's child process, raw keep-alive sockets).

1. First chunk: --latency mentions one after another; each timed from the HTTP ack of its `app_mention` event
   to the stream's first chunk reaching Slack (the stand-in's chat.startStream) (target: median < 300 ms).
2. --conversations mentions at once: each must get its whole answer, streamed, with no chunk lost or out of
   order: the chunks the stand-in took for each thread (`DevSlack.appends`), joined in the order they
   landed, must be the scripted answer, and so must the finished messages.
3. Meanwhile, from the moment the mentions are sent (or --clicks-after seconds later), clicks on the pauses
   of other runs (a three-gate workflow started beforehand: one deciding click each, then clicks on a pause
   the bot does not know), one after another, are timed from send to HTTP ack as bench/bot_load.py times
   them; those sent before the last answer ended count (target: p99 < 50 ms). They start with the mentions
   so that, however fast the machine, they cover the whole window: the burst of turns starting as well as
   the answers streaming. --no-streaming runs the same with the answers posted whole.

Prints a markdown table; the last line is machine-readable:
    conversation <db>: first_chunk_median_ms=<a> first_chunk_p99_ms=<b> answers_ok=<n>/<m> lost_or_reordered=<k>
        click_ack_p99_ms=<c> stream_s=<d>
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bot_load import SECRET, cpu_seconds, pct, send_clicks, serve_bot, three_gates  # noqa: E402
from bot import blocks as ui  # noqa: E402
from bot.devslack import DevSlack  # noqa: E402
from bot.registry import BotAgent, BotWorkflow  # noqa: E402
from bot.scripted_model import Reply, ScriptedModel, text, user_text  # noqa: E402

PIECE_DELAY = 0.01  # seconds between the scripted model's pieces (4 characters): an answer streams over ~0.6 s
FILLER = "It streams into the thread a few words at a time, as a model writes, and ends where it should."
CLICK_RUNS = 20  # paused runs whose pauses are clicked while the answers stream (fewer for fewer conversations)
CLICKS = 150  # clicks sent one after another (5 ms apart) while they stream: every pause's, then unknown ones
# (at most 3 per conversation, so that a small run stays small)
SENDER_STARTS = 4.0  # seconds the click sender is given to start before the conversations do
CLICKS_AFTER = 0.0  # seconds into the conversations the first click is sent (--clicks-after)


def answer_to(said: str) -> str:
    """The scripted answer to `said` (the bench checks every thread against it)."""
    return f"About {said}: {FILLER} {FILLER}"


def scripted(body: dict[str, Any]) -> Reply:
    return text(answer_to(user_text(body)))


def workflows() -> list[BotWorkflow]:
    """What the bot process serves (KERN_WORKFLOWS=bench.conversation:workflows): the conversational agent on
    the scripted model at BENCH_MODEL_URL, and a three-gate workflow whose pauses are clicked."""
    from kern.agent import Agent
    from kern.models.openai import OpenAIChat

    model = OpenAIChat(id="scripted", base_url=os.environ["BENCH_MODEL_URL"], api_key="scripted")
    return [
        BotAgent(Agent(name="talker", model=model), name="talker", streaming=os.environ.get("BENCH_STREAMING") != "0"),
        BotWorkflow(three_gates("gates"), name="gates"),
    ]


async def main(
    conversations: int, latency: int, db_kind: str, db: str, streaming: bool = True, clicks_after: float = CLICKS_AFTER
) -> None:
    with ScriptedModel(fallback=scripted, piece_delay=PIECE_DELAY) as model:
        env = {"BENCH_MODEL_URL": model.base_url, "BENCH_STREAMING": "1" if streaming else "0"}
        async with DevSlack(SECRET) as slack, serve_bot(slack, db, "bench.conversation:workflows", 3900, **env) as pid:
            await measure(slack, conversations, latency, db_kind, pid, streaming, clicks_after)


async def mention(slack: DevSlack, said: str) -> tuple[str, float]:
    """A person mentions the bot in C1; returns (the message's ts, when its app_mention was acked)."""
    ts, envelopes = slack.person_posts("U1", "C1", f"<@UBOT> {said}")
    acked = 0.0
    for envelope in envelopes:
        status, body, _took = await slack.send(json.dumps(envelope).encode(), "application/json")
        if status != 200:
            raise SystemExit(f"the event was answered {status}: {body}")
        acked = time.perf_counter()  # the app_mention's ack (sent last)
    return ts, acked


def answered(slack: DevSlack, ts: str) -> list[Any]:
    """The app's messages in the thread of `ts` (its answer: streamed, or posted whole), oldest first."""
    return [m for m in slack.thread(ts) if not m.user]


def finished(slack: DevSlack, ts: str) -> bool:
    """The thread of `ts` shows its answer, stopped (or, not streamed, posted)."""
    return any((m.metadata or {}).get("event_type") == "kern_answer" for m in slack.thread(ts))


async def until(predicate: Any, within: float, what: str) -> None:
    """Wait for `predicate` (polled every 20 ms: the times measured are the stand-in's own stamps)."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not within {within:.0f} s")
        await asyncio.sleep(0.02)


def all_finished(slack: DevSlack, threads: list[str]) -> Any:
    """A predicate: every thread of `threads` shows its answer (each looked at until it does, no longer)."""
    left = set(threads)

    def done() -> bool:
        answered = {
            m.thread_ts for m in slack.messages.values() if (m.metadata or {}).get("event_type") == "kern_answer"
        }
        left.difference_update(answered)
        return not left

    return done


def check(slack: DevSlack, ts: str, said: str) -> bool:
    """The answer in the thread of `ts` is whole: its chunks, in the order Slack took them, are the answer,
    and so is what the messages show."""
    want = ui.escape(answer_to(said))
    messages = answered(slack, ts)
    if not messages or any(m.streaming not in ("", "completed") for m in messages):
        return False
    mine = {m.ts for m in messages if m.streaming}
    chunks = "".join(piece for at, piece in slack.appends if at in mine)
    return (chunks == want or not mine) and "".join(m.text for m in messages) == want


async def measure(
    slack: DevSlack,
    conversations: int,
    latency: int,
    db_kind: str,
    bot_pid: int,
    streaming: bool = True,
    clicks_after: float = CLICKS_AFTER,
) -> None:
    # Warm up (the first agent run imports and connects), then one conversation at a time.
    ts, _ = await mention(slack, "warming up")
    await until(lambda: finished(slack, ts), 60, "the warm-up answer")
    first_chunk: list[float] = []
    for i in range(latency):
        ts, acked = await mention(slack, f"question {i}")
        await until(lambda t=ts: bool(answered(slack, t)), 30, "a first chunk")
        first_chunk.append(answered(slack, ts)[0].posted_at - acked)
        await until(lambda t=ts: finished(slack, t), 30, "an answer")

    # Paused runs whose pauses are clicked while the answers stream; every click built and signed beforehand.
    click_runs, count = min(CLICK_RUNS, conversations), min(CLICKS, 3 * conversations)
    await asyncio.gather(*(slack.command("run gates") for _ in range(click_runs)))
    await until(
        lambda: len([m for m in slack.messages.values() if "first" in m.text and m.thread_ts]) >= click_runs,
        60,
        "pauses",
    )
    cards = [m for m in slack.messages.values() if m.thread_ts is None and not m.user][-click_runs:]
    clicks = []  # one after another, as people click: each pause's Approve, then clicks on unknown pauses
    for i in range(count):
        payload = slack.click_payload(ui.CONFIRM, stale=slack.find(ui.CONFIRM, thread_ts=cards[i % len(cards)].ts))
        if i >= len(cards):
            payload["actions"][0]["value"] = f"bench-probe-{i}"
        clicks.append(slack.interaction_body(payload))

    said = [f"topic {i}" for i in range(conversations)]
    # The click sender (a process of its own, which takes a few seconds to start) sends its first click
    # `clicks_after` seconds after the conversations start.
    go = time.perf_counter() + SENDER_STARTS
    sender = asyncio.ensure_future(send_clicks(slack.bot_endpoint, [], clicks, slack, start_at=go + clicks_after))
    await asyncio.sleep(max(0.0, go - time.perf_counter()))
    cpu_before = cpu_seconds(bot_pid)
    started = time.perf_counter()
    threads = [ts for ts, _ in await asyncio.gather(*(mention(slack, s) for s in said))]
    await until(all_finished(slack, threads), 120, "every answer")
    ended = time.perf_counter()
    stream_s = ended - started
    cpu = cpu_seconds(bot_pid) - cpu_before
    timed = await sender
    ok = sum(check(slack, t, s) for t, s in zip(threads, said, strict=True))
    acks = [r["took"] * 1000 for r in timed["probes"] if started <= r["start"] <= ended]  # while they run
    if not acks:
        raise SystemExit("no click was sent while the conversations ran")
    assert all(r["status"] == 200 for r in timed["probes"]), "a click was not acked with 200"
    errors = [c for c in slack.calls if not c[2].get("ok")]
    calls = sum(1 for c in slack.calls if c[0] in ("chat.startStream", "chat.appendStream", "chat.stopStream"))

    chunk_ms = [x * 1000 for x in first_chunk]
    how = "streamed" if streaming else "answered (streaming off)"
    print(
        f"kern-bot conversations on {db_kind}: {conversations} {how} at once in {stream_s:.2f} s "
        f"(the bot used {cpu:.2f} s of CPU; {calls} streaming calls in all; Slack errors: {len(errors)})"
    )
    print()
    print("| measure | n | median | p99 | target |")
    print("| --- | ---: | ---: | ---: | --- |")
    print(
        f"| mention ack to first {'streamed chunk' if streaming else 'answer'} (ms) | {len(chunk_ms)} "
        f"| {statistics.median(chunk_ms):.1f} "
        f"| {pct(chunk_ms, 0.99):.1f} | median < 300 |"
    )
    print(f"| answers whole, {conversations} at once | {conversations} | {ok} ok | | all, no chunk lost or reordered |")
    print(
        f"| click ack while the {conversations} conversations run (ms) | {len(acks)} | {statistics.median(acks):.1f} "
        f"| {pct(acks, 0.99):.1f} | p99 < 50 |"
    )
    print()
    print(
        f"conversation {db_kind}{'' if streaming else ' no-streaming'}: "
        f"first_chunk_median_ms={statistics.median(chunk_ms):.1f} "
        f"first_chunk_p99_ms={pct(chunk_ms, 0.99):.1f} answers_ok={ok}/{conversations} "
        f"lost_or_reordered={conversations - ok} click_ack_p99_ms={pct(acks, 0.99):.1f} stream_s={stream_s:.2f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--latency", type=int, default=20, help="mentions timed one at a time (first chunk)")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--no-streaming", action="store_true", help="the agent posts its answer whole (to compare)")
    parser.add_argument("--clicks-after", type=float, default=CLICKS_AFTER, help="seconds in, the first click")
    args = parser.parse_args()
    if args.conversations < 1 or args.latency < 1:
        raise SystemExit("--conversations and --latency must be at least 1")
    if args.db == "sqlite":
        db_file = str(Path(tempfile.mkdtemp()) / "bench.db")
        asyncio.run(main(args.conversations, args.latency, args.db, db_file, not args.no_streaming, args.clicks_after))
    else:
        from benchlib import fresh_pg_database

        with fresh_pg_database() as url:
            asyncio.run(main(args.conversations, args.latency, args.db, url, not args.no_streaming, args.clicks_after))
