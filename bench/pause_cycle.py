"""Pause-cycle benchmark: how long one `run` or `continue_run` call takes when every step pauses.

    python bench/pause_cycle.py --db sqlite|async-sqlite|postgres --runs 200 [--api sync|async] [--floor] [--paused N]
                                [--gap MS]

A workflow of 3 function steps, each with requires_confirmation=True; all runs in ONE session (one
Workflow object); each run pauses 3 times and is continued. A cycle is one run or continue_run call.
last20/first20 (the median of the last 20 cycles over that of the first 20) shows whether a cycle gets
slower as the session grows (target: at most 1.3 over --runs 1000).

--floor: also time the two-transaction floor per cycle, interleaved with kern's runs (sync API): an
INSERT plus a compare-and-set UPDATE of a row with a JSON payload of similar size, each in its own
transaction, on the bare driver (sqlite3 WAL + synchronous=NORMAL, asyncpg); prints it next to kern's
median and their ratio.

--gap MS: sleep MS milliseconds after each run (sync API), as a bot idles between clicks. On a virtual
machine a short burst of work after an idle moment runs slower until the CPU warms up again: on the
2-core VM of 2026-11-24, a 12 ms sleep between runs took SQLite's cycle from 0.26 to 0.52-0.61 ms, the
first cycle after the sleep from 0.13 to 0.64 ms and the fourth from 0.24 to 0.33 ms. The interleaved
benchmarks (--floor here, bench/peers.py) put other work, and its waits, between kern's runs in the same
way.

--paused N: then put N paused runs in the same database (one paused through kern, N-1 bulk-inserted
copies of its rows with new ids, so it takes seconds), and time loading, confirming and continuing a
random one through the public API (`get_run`, `req.confirm()`, `continue_run`): median and p99 over
--samples distinct runs (target on SQLite: at most 2 ms median, 5 ms p99 with N=100000).

--db async-sqlite: the same SQLite file through `AsyncSqliteDb` (aiosqlite on the async-engine path that
PostgresDb uses) instead of `SqliteDb` (one worker-thread hop per transaction); floor and --paused as sqlite.

PostgreSQL runs in a fresh database on the server (KERN_BENCH_PG_URL, default the local `test` server),
dropped at the end. The last line is machine-readable:
    pause_cycle <db>: median_ms=<x> first20_ms=<y> last20_ms=<z> [floor_ms=<f>] [paused_median_ms=<m> paused_p99_ms=<p>]
                      [gap_ms=<g>]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
from benchlib import PG_SERVER_URL, PostgresFloor, SqliteFloor, Stats, fresh_pg_database, summarize

from kern._sync import run_sync
from kern.db.base import BaseDb
from kern.db.postgres import PostgresDb
from kern.db.sqlite import AsyncSqliteDb, SqliteDb
from kern.workflow import Step, StepInput, Workflow


def step(name: str) -> Step:
    def run(step_input: StepInput) -> str:
        return f"{name} done"

    return Step(name=name, executor=run, requires_confirmation=True)


def open_db(kind: str, tmp: Path, pg_url: str) -> BaseDb:
    if kind == "sqlite":
        return SqliteDb(db_file=tmp / "bench.db")
    if kind == "async-sqlite":
        return AsyncSqliteDb(db_file=tmp / "bench.db")
    return PostgresDb(db_url=pg_url, application_name="kern-bench")


def measure_sync(workflow: Workflow, runs: int, between: Callable[[], None] | None = None) -> list[float]:
    """Cycle times of `runs` runs; `between()` is called after each run (the interleaved floor)."""
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
        if between is not None:
            between()
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


# --- N paused runs -------------------------------------------------------------------------------------


def copy_id(prefix: str, i: int) -> str:
    """The id of copy `i`: 32 characters like kern's own (uuid4 hex), distinct per prefix."""
    return f"{prefix}{i:031d}"


# Copies of the seed run's rows (its session, its run) with new run, session and requirement ids, the
# ids inside the stored output (and journal) rewritten to match. Copy i gets ids copy_id("b"/"s"/"q", i).
_SQLITE_COPY = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
INSERT INTO {table} ({columns}) SELECT {values} FROM n, {table} AS seed WHERE seed.{key} = :seed
"""
_PG_COPY = """
INSERT INTO {table} ({columns}) SELECT {values}
FROM generate_series(1, $2) AS n(i), {table} AS seed WHERE seed.{key} = $1
"""


def _copy_statements(dialect: str) -> list[tuple[str, str]]:
    """(statement, which seed id it takes: 'session' or 'run') for sessions, then runs."""
    if dialect == "sqlite":
        new = "printf('{p}%031d', n.i)"
        text, json = "{col}", "{col}"
        template = _SQLITE_COPY
    else:
        new = "('{p}' || lpad(n.i::text, 31, '0'))"
        text, json = "{col}::text", "({col})::json"
        template = _PG_COPY
    run_id, session_id, req_id = (new.format(p=p) for p in "bsq")

    def rewritten(col: str) -> str:
        inner = text.format(col=f"seed.{col}")
        inner = f"replace(replace(replace({inner}, seed.run_id, {run_id}), seed.session_id, {session_id}), "
        inner += f"coalesce(seed.requirement_id, '-'), {req_id})"
        return json.format(col=inner)

    sessions = {
        "session_id": session_id,
        "workflow_name": "seed.workflow_name",
        "user_id": "seed.user_id",
        "created_at": "seed.created_at",
    }
    runs = {
        "run_id": run_id,
        "session_id": session_id,
        "workflow_name": "seed.workflow_name",
        "kind": "seed.kind",
        "status": "seed.status",
        "version": "seed.version",
        "lease_until": "seed.lease_until",
        "requirement_id": req_id,
        "deadline": "seed.deadline",
        "output": rewritten("output"),
        "journal": rewritten("journal"),
        "created_at": "seed.created_at",
        "updated_at": "seed.updated_at",
    }
    return [
        (template.format(table=table, key=key, columns=", ".join(cols), values=", ".join(cols.values())), which)
        for table, key, cols, which in (
            ("kern_sessions", "session_id", sessions, "session"),
            ("kern_runs", "run_id", runs, "run"),
        )
    ]


def bulk_copy(kind: str, where: str, seed_run: str, seed_session: str, count: int) -> None:
    """Insert `count` copies of the paused seed run (and its session) in one transaction."""
    seeds = {"run": seed_run, "session": seed_session}
    statements = _copy_statements(kind)
    if kind == "sqlite":
        conn = sqlite3.connect(where, timeout=30)
        try:
            with conn:
                for sql, which in statements:
                    conn.execute(sql, {"count": count, "seed": seeds[which]})
        finally:
            conn.close()
        return

    async def copy() -> None:
        conn = await asyncpg.connect(where, server_settings={"application_name": "kern-bench"})
        try:
            async with conn.transaction():
                for sql, which in statements:
                    await conn.execute(sql, seeds[which], count)
            await conn.execute("ANALYZE kern_runs; ANALYZE kern_sessions")
        finally:
            await conn.close()

    asyncio.run(copy())


def measure_paused(workflow: Workflow, kind: str, where: str, count: int, samples: int) -> tuple[float, Stats]:
    """Build `count` paused runs; time get_run + confirm + continue_run on `samples` random distinct ones
    (after 10 warm-up ones). Returns the build time in seconds and the stats in milliseconds."""
    start = time.perf_counter()
    seed = workflow.run("input")
    assert seed.is_paused
    bulk_copy(kind, where, seed.run_id, seed.session_id, count - 1)
    built = time.perf_counter() - start
    picks = random.sample(range(1, count), min(count - 1, samples + 10))
    ms: list[float] = []
    for i in picks:
        start = time.perf_counter()
        run = workflow.get_run(copy_id("b", i))
        for req in run.steps_requiring_confirmation:
            req.confirm()
        out = workflow.continue_run(run)
        ms.append((time.perf_counter() - start) * 1000)
        assert out.is_paused and out.step_requirements[-1].step_name == "s2", out.status
    return built, summarize(ms[10:] or ms)


# --- main ----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "async-sqlite", "postgres"], default="sqlite")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--api", choices=["sync", "async"], default="sync")
    parser.add_argument("--warmup", type=int, default=5, help="runs before measuring (tables, caches)")
    parser.add_argument("--floor", action="store_true", help="also time the two-transaction floor")
    parser.add_argument("--paused", type=int, default=0, metavar="N", help="then time a random one of N paused runs")
    parser.add_argument("--samples", type=int, default=200, help="random paused runs timed with --paused")
    parser.add_argument("--gap", type=float, default=0.0, metavar="MS", help="sleep MS ms after each run (sync API)")
    args = parser.parse_args()
    if args.paused and args.paused < 2:
        parser.error("--paused needs at least 2 runs")
    if args.gap < 0 or (args.gap and args.api != "sync"):
        parser.error("--gap takes a duration of 0 ms or more, with --api sync")
    dialect = "postgres" if args.db == "postgres" else "sqlite"  # of the floor and the --paused bulk copy

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kern-pause-cycle-")))
        pg_url = stack.enter_context(fresh_pg_database(PG_SERVER_URL)) if args.db == "postgres" else ""
        db = open_db(args.db, tmp, pg_url)
        workflow = Workflow(
            name=f"bench-{os.getpid()}-{time.time_ns()}", db=db, steps=[step("s1"), step("s2"), step("s3")]
        )
        floor: SqliteFloor | PostgresFloor | None = None
        floor_ms: list[float] = []
        if args.floor:
            floor = SqliteFloor(tmp / "floor.db") if dialect == "sqlite" else PostgresFloor(pg_url)
            stack.callback(floor.close)
            floor.cycles(4 * args.warmup)

        measure: Callable[[int], list[float]]

        def between(floor: SqliteFloor | PostgresFloor | None) -> None:
            if floor is not None:
                floor_ms.extend(floor.cycles(4))
            if args.gap:
                time.sleep(args.gap / 1000)

        if args.api == "sync":
            measure = lambda n: measure_sync(workflow, n, lambda: between(floor))  # noqa: E731
        else:
            measure = lambda n: asyncio.run(measure_async(workflow, n))  # noqa: E731
        measure(args.warmup)
        floor_ms.clear()
        if floor is not None:
            floor.single_ms.clear()
        cycles = [c * 1000 for c in measure(args.runs)]
        if floor is not None and not floor_ms:  # async API: the floor after kern, same number of cycles
            floor_ms = floor.cycles(len(cycles))
        paused = (
            measure_paused(
                workflow, dialect, str(tmp / "bench.db") if dialect == "sqlite" else pg_url, args.paused, args.samples
            )
            if args.paused
            else None
        )
        if args.api == "sync":
            run_sync(db.close())
        s = summarize(cycles)

    print(f"{'db':<13}{'api':<7}{'cycles':>7}{'median':>9}{'p90':>9}{'p99':>9}{'first20':>9}{'last20':>9}{'ratio':>7}")
    print(
        f"{args.db:<13}{args.api:<7}{s.cycles:>7}{s.median:>9.3f}{s.p90:>9.3f}"
        f"{s.p99:>9.3f}{s.first20:>9.3f}{s.last20:>9.3f}{s.drift:>7.2f}"
    )
    print("(milliseconds per cycle; a cycle is one run or continue_run call; ratio = last20/first20, target <= 1.3)")
    if args.gap:
        print(f"(each run followed by {args.gap:g} ms of sleep)")
    summary = f"pause_cycle {args.db}: median_ms={s.median:.3f} first20_ms={s.first20:.3f} last20_ms={s.last20:.3f}"
    if floor is not None:
        f, single = summarize(floor_ms), summarize(floor.single_ms)
        how = "interleaved" if args.api == "sync" else "after kern"
        driver = "sqlite3 WAL+NORMAL" if dialect == "sqlite" else "asyncpg"
        print(
            f"floor ({driver}, INSERT + compare-and-set UPDATE in two BEGIN/COMMIT transactions, {how}): "
            f"median {f.median:.3f} ms p90 {f.p90:.3f} p99 {f.p99:.3f}; kern {s.median:.3f} ms = "
            f"{s.median / f.median:.2f}x the floor"
        )
        print(
            f"floor, one statement per implicit transaction: median {single.median:.3f} ms; "
            f"kern = {s.median / single.median:.2f}x"
        )
        summary += f" floor_ms={f.median:.3f}"
    if paused is not None:
        built, p = paused
        print(
            f"{args.paused} paused runs (built in {built:.1f} s): get_run + confirm + continue_run of a random one, "
            f"{p.cycles} samples: median {p.median:.3f} ms p90 {p.p90:.3f} p99 {p.p99:.3f}"
        )
        summary += f" paused_median_ms={p.median:.3f} paused_p99_ms={p.p99:.3f}"
    if args.gap:
        summary += f" gap_ms={args.gap:g}"
    print(summary)


if __name__ == "__main__":
    main()
