"""kern-bot under load: concurrent clicks through the real HTTP endpoint against the local Slack (bot.devslack).

    python bench/bot_load.py [--runs 200] [--db sqlite|postgres] [--quorum] [--home-viewers N]

PostgreSQL runs in a fresh database on the server (KERN_BENCH_PG_URL, default the local `test` server),
dropped afterwards.

Three processes, as in production: the bot (`kern-bot serve`), Slack's Web API (the stand-in, in this
process) and Slack's click sender (a child process with raw keep-alive sockets, so that neither the
stand-in's work nor an HTTP client's overhead is timed as the bot's ack).

It starts --runs paused runs of a three-gate function workflow, then:

1. clicks Approve on all of them at once (a burst: every interaction in flight together) and times
   each HTTP ack (Slack gives up at 3000 ms);
2. while those --runs resumptions are still being worked through, sends a click every 5 ms and times
   its ack (clicks arriving while the bot is busy);
3. times click to next pause card posted, for the burst and for one click at a time.

--home-viewers N: before the burst, N people open the bot's App Home (and may answer every pause), so
each pause posted or closed republishes their Homes, each listing the open pauses, as a team using the
Home would see.

--quorum: the same on a workflow whose gates need two approvals (`Approvers(required=2)`): the burst
sends both votes of every run at once (2 x --runs clicks), and "click to next card" is timed from the
second vote.

The last line is machine-readable:
    bot_load <db>[ quorum][ home_viewers=N]: ack_p50_ms=<a> ack_p99_ms=<b> busy_ack_p99_ms=<c>
        next_card_median_ms=<d> burst_s=<e> bot_cpu_s=<f>
(burst_s: first click of the burst to the last next card posted; bot_cpu_s: the bot's CPU meanwhile).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot import blocks as ui  # noqa: E402
from bot.devslack import DevSlack  # noqa: E402
from bot.policy import Approvers  # noqa: E402
from bot.registry import BotWorkflow  # noqa: E402
from kern.workflow import Step, Workflow  # noqa: E402

SECRET = "bench-secret"
PROBE_GAP = 0.005  # seconds between clicks sent while the burst is being worked through


def three_gates(name: str) -> Workflow:
    return Workflow(
        name=name,
        steps=[
            Step(name="first", executor=lambda s: "first", requires_confirmation=True),
            Step(name="second", executor=lambda s: "second", requires_confirmation=True),
            Step(name="third", executor=lambda s: "third", requires_confirmation=True),
        ],
    )


# What the bot process serves (KERN_WORKFLOWS=bench.bot_load:WORKFLOWS).
WORKFLOWS = [
    BotWorkflow(three_gates("load"), name="load"),
    BotWorkflow(three_gates("quorum"), name="quorum", approvers=Approvers(required=2)),
]
VOTERS = ("U1", "U2")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


# ----- the click sender (a child process) -------------------------------------------------------------
async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> dict[str, Any]:
    start = time.perf_counter()
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
    )
    if length:
        await reader.readexactly(length)
    return {"start": start, "took": time.perf_counter() - start, "status": int(head.split(b" ", 2)[1])}


async def _send_clicks(spec: dict[str, Any]) -> dict[str, Any]:
    host, port = spec["host"], spec["port"]

    def raw(request: dict[str, Any]) -> bytes:
        body = request["body"].encode()
        head = "".join(f"{k}: {v}\r\n" for k, v in request["headers"].items())
        start = f"POST /slack/events HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
        return f"{start}{head}\r\n".encode() + body

    burst, probes = [raw(r) for r in spec["burst"]], [raw(r) for r in spec["probes"]]
    conns = [await asyncio.open_connection(host, port) for _ in range(len(burst) + 1)]
    health = f"GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    await asyncio.gather(*(_exchange(r, w, health) for r, w in conns))  # every connection open and warm
    if spec.get("start_at"):  # not before then (a perf_counter time: the clock is the machine's, shared)
        await asyncio.sleep(max(0.0, spec["start_at"] - time.perf_counter()))
    burst_results = await asyncio.gather(*(_exchange(r, w, body) for (r, w), body in zip(conns, burst, strict=False)))
    probe_results = []
    probe_reader, probe_writer = conns[-1]
    for body in probes:
        probe_results.append(await _exchange(probe_reader, probe_writer, body))
        await asyncio.sleep(PROBE_GAP)
    return {"burst": burst_results, "probes": probe_results}


async def send_clicks(
    endpoint: str, burst: list[bytes], probes: list[bytes], slack: DevSlack, start_at: float | None = None
) -> dict[str, Any]:
    """Run the click sender in its own process (sending from `start_at`, a `time.perf_counter()` time, if
    given); returns its timings."""
    host, port = endpoint.split("//")[1].split("/")[0].split(":")
    spec = {
        "host": host,
        "port": int(port),
        "start_at": start_at,
        "burst": [{"body": b.decode(), "headers": slack.signed(b)} for b in burst],
        "probes": [{"body": b.decode(), "headers": slack.signed(b)} for b in probes],
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--send-clicks", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate(json.dumps(spec).encode())
    if proc.returncode != 0:
        raise SystemExit("the click sender failed")
    return json.loads(out)


# ----- the bench ----------------------------------------------------------------------------------------
async def main(runs: int, db_kind: str, quorum: bool, db: str, home_viewers: int = 0) -> None:
    async with DevSlack(SECRET) as slack, serve_bot(slack, db, "bench.bot_load:WORKFLOWS", 3400) as bot_pid:
        await measure(slack, runs, db_kind, bot_pid, quorum, home_viewers)


@contextlib.asynccontextmanager
async def serve_bot(slack: DevSlack, db: str, workflows: str, port_base: int, **env: str) -> AsyncIterator[int]:
    """A `kern-bot serve` process on database `db` serving `workflows` (a KERN_WORKFLOWS value), talking to
    `slack` (which now sends it Slack's requests), once it is healthy; yields its pid, and stops it after.
    `env`: more of its environment."""
    port = port_base + os.getpid() % 500
    environment = {
        **os.environ,
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.api_url,
        "KERN_DB": db,
        "KERN_WORKFLOWS": workflows,
        "PYTHONPATH": str(ROOT),
        **env,
    }
    command = [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    bot = subprocess.Popen(  # noqa: ASYNC220 - started once, before any measurement
        command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    slack.bot_endpoint = f"http://127.0.0.1:{port}/slack/events"
    try:
        await wait_healthy(f"http://127.0.0.1:{port}/health", bot)
        yield bot.pid
    finally:
        bot.terminate()
        try:
            bot.wait(15)
        except subprocess.TimeoutExpired:
            bot.kill()


async def wait_healthy(url: str, bot: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
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


def pauses_named(slack: DevSlack, name: str) -> int:
    return sum(1 for m in slack.messages.values() if m.thread_ts and name in m.text)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far; NaN where /proc is missing (not Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    slack: DevSlack, runs: int, db_kind: str, bot_pid: int, quorum: bool = False, home_viewers: int = 0
) -> None:
    workflow, voters = ("quorum", VOTERS) if quorum else ("load", VOTERS[:1])
    started = time.perf_counter()
    command_acks = [r[2] for r in await asyncio.gather(*(slack.command(f"run {workflow}") for _ in range(runs)))]
    await until_quiet(slack, lambda: pauses_named(slack, "first"), runs)
    setup_s = time.perf_counter() - started
    cards = [m for m in slack.messages.values() if m.thread_ts is None]
    assert len(cards) == runs, len(cards)

    # Every click is built and signed before the clock starts.
    burst = [  # every vote of every run (one each, or with --quorum two, by different people)
        slack.interaction_body(
            slack.click_payload(ui.CONFIRM, user=user, stale=slack.find(ui.CONFIRM, thread_ts=card.ts))
        )
        for card in cards
        for user in voters
    ]
    probes = []  # clicks on a pause the bot does not know: the same ack path, and no run is touched
    for i in range(200):
        payload = slack.click_payload(ui.CONFIRM, stale=slack.find(ui.CONFIRM, thread_ts=cards[i % runs].ts))
        payload["actions"][0]["value"] = f"bench-probe-{i}"
        probes.append(slack.interaction_body(payload))
    for i in range(home_viewers):  # each Home published before the clock starts
        user = f"UHOME{i}"
        await slack.open_home(user)
        await until_quiet(slack, lambda u=user: int(u in slack.homes), 1, within=30)
    cpu_before = cpu_seconds(bot_pid)
    calls_before = len(slack.calls)
    timings = await send_clicks(slack.bot_endpoint, burst, probes, slack)
    assert all(r["status"] == 200 for r in timings["burst"] + timings["probes"]), "a click was not acked with 200"
    clicked_at: dict[str, float] = {}  # when the deciding (last) vote of each run was sent
    for i, r in enumerate(timings["burst"]):
        ts = cards[i // len(voters)].ts
        clicked_at[ts] = max(clicked_at.get(ts, 0.0), r["start"])
    burst_done = max(r["start"] + r["took"] for r in timings["burst"])

    await until_quiet(slack, lambda: pauses_named(slack, "second"), runs)
    burst_cpu = cpu_seconds(bot_pid) - cpu_before  # the bot's CPU for the burst (and the probes meanwhile)
    burst_calls = Counter(  # the Slack calls the burst (and the probes meanwhile) cost, a status line apart
        "status line" if method == "chat.update" and "Running" in str(args.get("text", "")) else method
        for method, args, _ in slack.calls[calls_before:]
    )
    next_card, last_card = [], 0.0
    for card in cards:
        second = [m for m in slack.thread(card.ts) if "second" in m.text]
        assert second, "no next pause card"
        next_card.append(second[0].posted_at - clicked_at[card.ts])
        last_card = max(last_card, second[0].posted_at)
    # The probes that count are those acked while the burst's resumptions were still being worked through.
    busy_probes = [r["took"] for r in timings["probes"] if burst_done <= r["start"] <= last_card]

    single: list[float] = []  # one click at a time: the latency a person sees
    for card in cards[:20]:
        stale = slack.find(ui.CONFIRM, thread_ts=card.ts)
        for user in voters[:-1]:  # the earlier votes are not timed: the deciding one is
            await slack.click(ui.CONFIRM, user=user, stale=stale)
        start = time.perf_counter()
        await slack.click(ui.CONFIRM, user=voters[-1], stale=stale)
        await until_quiet(slack, lambda c=card: sum(1 for m in slack.thread(c.ts) if "third" in m.text), 1, within=30)
        single.append(next(m for m in slack.thread(card.ts) if "third" in m.text).posted_at - start)
    errors = [c for c in slack.calls if not c[2].get("ok")]

    def ms(xs: list[float]) -> list[float]:
        return [x * 1000 for x in xs]

    acks_ms, busy_ms = ms([r["took"] for r in timings["burst"]]), ms(busy_probes)
    burst_s = last_card - min(clicked_at.values())
    mode, tag = (" (2-of-M votes)", " quorum") if quorum else ("", "")
    if home_viewers:
        mode, tag = f"{mode} ({home_viewers} App Home viewers)", f"{tag} home_viewers={home_viewers}"
    print(
        f"kern-bot load{mode}, {runs} runs on {db_kind}; setup (commands to first pause) {setup_s:.1f} s; "
        f"burst worked through in {burst_s:.2f} s "
        f"(the bot used {burst_cpu:.2f} s of CPU); "
        f"Slack errors: {len(errors)}"
    )
    print("Slack calls meanwhile: " + ", ".join(f"{method} {n}" for method, n in sorted(burst_calls.items())))
    print(f"{'measure':<44}{'n':>5}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}")
    for name, values in (
        ("slash command ack (ms)", ms(command_acks)),
        (f"click ack, burst of {len(acks_ms)} (ms)", acks_ms),
        (f"click ack, while {runs} resume (ms)", busy_ms),
        (f"click to next card, burst of {runs} (ms)", ms(next_card)),
        ("click to next card, one click (ms)", ms(single)),
    ):
        if not values:
            print(f"{name:<44}{0:>5}  (none)")
            continue
        print(
            f"{name:<44}{len(values):>5}{statistics.median(values):>9.1f}{pct(values, 0.9):>9.1f}"
            f"{pct(values, 0.99):>9.1f}{max(values):>9.1f}"
        )
    print(
        f"bot_load {db_kind}{tag}: ack_p50_ms={statistics.median(acks_ms):.1f} ack_p99_ms={pct(acks_ms, 0.99):.1f} "
        f"busy_ack_p99_ms={pct(busy_ms, 0.99) if busy_ms else float('nan'):.1f} "
        f"next_card_median_ms={statistics.median(ms(single)):.1f} burst_s={burst_s:.2f} bot_cpu_s={burst_cpu:.2f}"
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--send-clicks"]:
        json.dump(asyncio.run(_send_clicks(json.load(sys.stdin))), sys.stdout)
        raise SystemExit(0)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--quorum", action="store_true", help="gates that need two approvals; both sent at once")
    parser.add_argument("--home-viewers", type=int, default=0, metavar="N", help="N people have the App Home open")
    args = parser.parse_args()
    if args.db == "sqlite":
        db_file = str(Path(tempfile.mkdtemp()) / "bench.db")
        asyncio.run(main(args.runs, args.db, args.quorum, db_file, args.home_viewers))
    else:  # a fresh database: rows a killed bench bot left owing (outbox) would be delivered by this one
        from benchlib import fresh_pg_database  # (the bot process imports this module as bench.bot_load)

        with fresh_pg_database() as url:
            asyncio.run(main(args.runs, args.db, args.quorum, url, args.home_viewers))
