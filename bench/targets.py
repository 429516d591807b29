"""Issue 14's four targets, checked in one sitting: runs the benchmarks that measure them, one after
another, and prints what each repeat measured against each bound.

    python bench/targets.py [--repeat 3] [--scale 1.0]

1. SQLite: kern at least 10x faster per cycle than LangGraph with SqliteSaver, and flat:
   `peers.py --db sqlite --only kern,langgraph --runs 1000` (LangGraph / kern; kern's last20/first20).
2. PostgreSQL: at least 2x faster than LangGraph with PostgresSaver, and at most 1.5x the two-transaction
   floor: `peers.py --db postgres --only kern,langgraph --runs 300` (LangGraph / kern) and
   `pause_cycle.py --db postgres --floor --runs 300` (kern / the floor interleaved with kern alone). kern /
   the floor as measured in that `peers` run is printed too, for information only (not judged): with
   LangGraph's runs in the same process, kern's and the floor's medians each swing between two levels, as
   the 2 cores happen to place the client and the server's backends, while without LangGraph both hold
   still. Measured on 2026-11-24 (seven runs, of the code before and after one change, each showing both
   levels): beside LangGraph, kern 0.82-0.91 ms with the floor at 0.72-0.79 ms (1.10-1.23x) in four runs,
   kern 1.00-1.10 ms with the floor at 0.59-0.62 ms (1.63-1.78x) in three; with `--only kern`, five runs:
   kern 1.05-1.09 ms, floor 0.77-0.80 ms (1.35-1.36x), as `pause_cycle --floor` measured (1.35-1.37x).
3. 100,000 paused runs on SQLite: loading, confirming and continuing a random one, median at most 2 ms and
   p99 at most 5 ms: `pause_cycle.py --db sqlite --paused 100000`.
4. kern-bot: 200 clicks at once on 200 paused runs reach their 200 next cards within 1 s on SQLite and
   1.5 s on PostgreSQL, click ack p99 under 50 ms: `bot_load.py --runs 200` on each.

Each benchmark runs in a process of its own, with this interpreter; PostgreSQL work happens in fresh
databases on the server (KERN_BENCH_PG_URL, default the local `test` server). Targets 1 and 2 need
LangGraph (`pip install -e '.[bench]'`): without it their LangGraph rows say "not measured". `--scale`
multiplies every run count (`--scale 0.01`: a smoke test whose numbers mean nothing). A check is met when
every repeat met it; an informational row is printed and not judged. The last line is machine-readable:
    targets: 1=<met|not met|not measured> 2=... 3=... 4=...
"""

from __future__ import annotations

import argparse
import math
import operator
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
Values = dict[str, float]


@dataclass
class Check:
    """One bound of one target, and what each repeat measured for it (None: not measured)."""

    target: int
    what: str
    bound: float
    within: Callable[[float, float], bool]  # (measured, bound) -> met
    sign: str
    judged: bool = True  # False: printed for information, not part of the target's verdict
    measured: list[float | None] = field(default_factory=list)

    def verdict(self) -> str:
        got = [m for m in self.measured if m is not None]
        missing = len(self.measured) - len(got)
        if not got:
            said = "not measured"
        else:
            met = sum(self.within(m, self.bound) for m in got)
            said = f"{met}/{len(got)}" + (f" ({missing} not measured)" if missing else "")
        return said if self.judged else f"{said} (information, not judged)"

    def met(self) -> bool | None:
        got = [m for m in self.measured if m is not None]
        return all(self.within(m, self.bound) for m in got) if got else None


def run_bench(script: str, *args: str) -> str:
    """Run one benchmark; its output. A benchmark that fails stops the whole check, with its error."""
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args], capture_output=True, text=True, cwd=BENCH.parent, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{script} {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def machine_line(out: str, prefix: str) -> Values:
    """The key=value numbers of the output's line starting with `prefix` (its machine-readable summary)."""
    line = next(line for line in reversed(out.splitlines()) if line.startswith(prefix))
    values: Values = {}
    for part in line[len(prefix) :].split():
        key, sep, value = part.partition("=")
        if sep:
            try:
                values[key] = float(value)
            except ValueError:
                continue
    return values


def ratio(values: Values, top: str, bottom: str) -> float | None:
    if top not in values or bottom not in values or not values[bottom]:
        return None
    return values[top] / values[bottom]


def checks() -> list[Check]:
    at_least, at_most, under = operator.ge, operator.le, operator.lt
    return [
        Check(1, "SQLite: LangGraph / kern (peers)", 10, at_least, ">="),
        Check(1, "SQLite: kern last20/first20 (peers)", 1.3, at_most, "<="),
        Check(2, "PostgreSQL: LangGraph / kern (peers)", 2, at_least, ">="),
        Check(2, "PostgreSQL: kern / floor (pause_cycle --floor)", 1.5, at_most, "<="),
        Check(2, "PostgreSQL: kern / floor (peers, beside LangGraph)", 1.5, at_most, "<=", judged=False),
        Check(3, "paused runs: median ms", 2, at_most, "<="),
        Check(3, "paused runs: p99 ms", 5, at_most, "<="),
        Check(4, "SQLite: clicks at once to their next cards, s", 1, at_most, "<="),
        Check(4, "PostgreSQL: clicks at once to their next cards, s", 1.5, at_most, "<="),
        Check(4, "SQLite: click ack p99 ms", 50, under, "<"),
        Check(4, "PostgreSQL: click ack p99 ms", 50, under, "<"),
    ]


# Run counts at --scale 1, and the least each benchmark takes.
COUNTS = {
    "peers_sqlite": (1000, 3),
    "peers_postgres": (300, 3),
    "floor": (300, 3),
    "paused": (100_000, 50),
    "bot": (200, 5),
}


def scaled(scale: float) -> dict[str, str]:
    return {name: str(max(least, round(n * scale))) for name, (n, least) in COUNTS.items()}


def measure_once(runs: dict[str, str]) -> list[float | None]:
    """One repeat: every benchmark once; the measured value of each check, in `checks()` order."""
    sqlite_peers = machine_line(
        run_bench("peers.py", "--db", "sqlite", "--only", "kern,langgraph", "--runs", runs["peers_sqlite"]),
        "peers sqlite:",
    )
    pg_peers = machine_line(
        run_bench("peers.py", "--db", "postgres", "--only", "kern,langgraph", "--runs", runs["peers_postgres"]),
        "peers postgres:",
    )
    pg_cycle = machine_line(
        run_bench("pause_cycle.py", "--db", "postgres", "--floor", "--runs", runs["floor"]), "pause_cycle postgres:"
    )
    paused = machine_line(
        run_bench("pause_cycle.py", "--db", "sqlite", "--runs", "50", "--paused", runs["paused"]),
        "pause_cycle sqlite:",
    )
    bots = {
        db: machine_line(run_bench("bot_load.py", "--db", db, "--runs", runs["bot"]), f"bot_load {db}:")
        for db in ("sqlite", "postgres")
    }
    return [
        ratio(sqlite_peers, "langgraph_ms", "kern_ms"),
        sqlite_peers.get("kern_drift"),
        ratio(pg_peers, "langgraph_ms", "kern_ms"),
        ratio(pg_cycle, "median_ms", "floor_ms"),
        ratio(pg_peers, "kern_ms", "floor_ms") if "langgraph_ms" in pg_peers else None,
        paused.get("paused_median_ms"),
        paused.get("paused_p99_ms"),
        bots["sqlite"].get("burst_s"),
        bots["postgres"].get("burst_s"),
        bots["sqlite"].get("ack_p99_ms"),
        bots["postgres"].get("ack_p99_ms"),
    ]


def report(found: list[Check], repeat: int) -> None:
    runs = "".join(f"{'run ' + str(i + 1):>9}" for i in range(repeat))
    print(f"{'target':<8}{'check':<54}{'bound':>8}{runs}  met")
    for check in found:
        cells = "".join(f"{'-' if m is None else f'{m:.2f}':>9}" for m in check.measured)
        print(f"{check.target:<8}{check.what:<54}{check.sign + format(check.bound, 'g'):>8}{cells}  {check.verdict()}")
    summary = []
    for target in sorted({c.target for c in found}):
        verdicts = [c.met() for c in found if c.target == target and c.judged]
        if any(v is False for v in verdicts):
            summary.append(f"{target}=not met")
        elif all(v is None for v in verdicts):
            summary.append(f"{target}=not measured")
        else:
            summary.append(f"{target}=met" if all(v for v in verdicts) else f"{target}=partly measured")
    print("(a check is met when every repeat met it; '-': not measured, e.g. LangGraph not installed)")
    print("targets: " + " ".join(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1, help="how many times to run every benchmark")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every run count (a smoke test: 0.01)")
    args = parser.parse_args()
    if args.repeat < 1 or not args.scale > 0:
        parser.error("--repeat takes a count of 1 or more, --scale a number above 0")
    found, runs = checks(), scaled(args.scale)
    for _ in range(args.repeat):
        for check, value in zip(found, measure_once(runs), strict=True):
            check.measured.append(None if value is None or math.isnan(value) else value)
    print(
        f"peers: {runs['peers_sqlite']} runs on SQLite, {runs['peers_postgres']} on PostgreSQL; pause_cycle --floor: "
        f"{runs['floor']} runs; {runs['paused']} paused runs; bot_load: {runs['bot']} clicks at once"
    )
    report(found, args.repeat)


if __name__ == "__main__":
    main()
