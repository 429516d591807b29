"""Pause-cycle benchmark: how long one `run` or `continue_run` call takes when every step pauses.

    python bench/pause_cycle.py --db sqlite|postgres --runs 200 [--api sync|async]

A workflow of 3 function steps, each with requires_confirmation=True; all runs in ONE session (one
Workflow object); each run pauses 3 times and is continued. A cycle is one run or continue_run call.
The last line is machine-readable:
    pause_cycle <db>: median_ms=<x> first20_ms=<y> last20_ms=<z>
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kern.db.base import BaseDb
from kern.db.postgres import PostgresDb
from kern.db.sqlite import SqliteDb
from kern.workflow import Step, StepInput, Workflow


def step(name: str) -> Step:
    def run(step_input: StepInput) -> str:
        return f"{name} done"

    return Step(name=name, executor=run, requires_confirmation=True)


def open_db(kind: str) -> BaseDb:
    if kind == "sqlite":
        return SqliteDb(db_file=Path(tempfile.mkdtemp()) / "bench.db")
    return PostgresDb(db_url=os.environ.get("KERN_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"))


def measure_sync(workflow: Workflow, runs: int) -> list[float]:
    cycles: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        out = workflow.run("input")
        cycles.append(time.perf_counter() - start)
        while out.is_paused:
            out.step_requirements[-1].confirm()
            start = time.perf_counter()
            out = workflow.continue_run(out)
            cycles.append(time.perf_counter() - start)
        assert out.content == "s3 done", out.content
    return cycles


async def measure_async(workflow: Workflow, runs: int) -> list[float]:
    cycles: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        out = await workflow.arun("input")
        cycles.append(time.perf_counter() - start)
        while out.is_paused:
            out.step_requirements[-1].confirm()
            start = time.perf_counter()
            out = await workflow.acontinue_run(out)
            cycles.append(time.perf_counter() - start)
        assert out.content == "s3 done", out.content
    return cycles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--api", choices=["sync", "async"], default="sync")
    parser.add_argument("--warmup", type=int, default=5, help="runs before measuring (tables, caches)")
    args = parser.parse_args()

    workflow = Workflow(
        name=f"bench-{os.getpid()}-{time.time_ns()}", db=open_db(args.db), steps=[step("s1"), step("s2"), step("s3")]
    )
    measure: Callable[[int], list[float]]
    if args.api == "sync":
        measure = lambda n: measure_sync(workflow, n)  # noqa: E731
    else:
        measure = lambda n: asyncio.run(measure_async(workflow, n))  # noqa: E731
    measure(args.warmup)
    cycles = [c * 1000 for c in measure(args.runs)]
    ms = sorted(cycles)

    def pct(p: float) -> float:
        return ms[min(len(ms) - 1, int(p * len(ms)))]

    first20, last20 = statistics.median(cycles[:20]), statistics.median(cycles[-20:])
    print(f"{'db':<10}{'api':<7}{'cycles':>7}{'median':>9}{'p90':>9}{'p99':>9}{'first20':>9}{'last20':>9}{'ratio':>7}")
    print(
        f"{args.db:<10}{args.api:<7}{len(cycles):>7}{statistics.median(cycles):>9.3f}{pct(0.9):>9.3f}"
        f"{pct(0.99):>9.3f}{first20:>9.3f}{last20:>9.3f}{last20 / first20:>7.2f}"
    )
    print("(milliseconds per cycle; a cycle is one run or continue_run call)")
    print(
        f"pause_cycle {args.db}: median_ms={statistics.median(cycles):.3f} first20_ms={first20:.3f} "
        f"last20_ms={last20:.3f}"
    )


if __name__ == "__main__":
    main()
