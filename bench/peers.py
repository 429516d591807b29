"""The same human-in-the-loop workflow on kern, LangGraph and Agno, interleaved in one sitting.

    python bench/peers.py [--runs 200] [--db sqlite|postgres|both] [--only kern,langgraph,agno] [--warmup 5]
                          [--block 1]

The workflow: 3 function steps, each needing a person's confirmation before it runs. A run therefore
takes 4 cycles: the run call (it pauses before step 1) and 3 resume calls (each confirms, runs a step,
and pauses before the next or finishes). A cycle is one run or one resume call, timed from the caller.

- kern: `Workflow` with `SqliteDb` / `PostgresDb`, all runs in one session (one Workflow object).
- Agno: the same code on Agno's workflow HITL API (which kern mirrors), `SqliteDb` / `PostgresDb`, all
  runs in one session (a fixed `session_id`), telemetry off.
- LangGraph: a 3-node `StateGraph`, each node calling `interrupt()` before its work, resumed with
  `Command(resume=True)`; `SqliteSaver` / `PostgresSaver`, one thread per run, default durability.
- floor: an INSERT plus a compare-and-set UPDATE of a row with a JSON payload, two BEGIN/COMMIT
  transactions, on the bare driver (sqlite3 WAL + synchronous=NORMAL; asyncpg), see benchlib.py; and
  floor_implicit, the same two statements each as its own implicit transaction (one round trip each).

Every contender gets the same warm-up, then the runs are interleaved: round i does run i of every contender,
so that a noisy moment on a shared machine hits all of them alike, in an order that changes each round so
that each contender runs just after each other one about as often (`round_orders`). `--block N` makes a
round N runs of each contender in a row, so that each runs as one busy client does rather than just after
another client's run (on PostgreSQL, that ordering alone cost kern about 0.2 ms a cycle in one sitting:
1.38-1.40 ms at --block 1, 1.16-1.19 ms at --block 20).

What runs just before a contender costs it: another framework's run leaves the CPU caches full of its own
memory, and the next run's first cycles fetch theirs again. The cost is about the same in time for every
contender (so a bigger share of a short cycle), grows with how much memory the run before touched, and is
gone by the third cycle. Measured on 2026-11-24 (SQLite, kern's four cycles, medians in ms): after a kern
run 0.077 / 0.166 / 0.162 / 0.161; after a LangGraph run 0.256 / 0.288 / 0.195 / 0.168; after an Agno run
0.357 / 0.334 / 0.191 / 0.160; after touching 32 MB of memory 0.417 / 0.376 / 0.224 / 0.178 (as much or more
with the other framework in a process of its own: after LangGraph 0.334 / 0.318 / 0.191 / 0.167). So orders
matter, and `round_orders` lets each contender follow each other one about as often. The sitting's numbers,
kern against LangGraph on SQLite: rotating one order, 10.3-10.7x with `--only kern,langgraph` and 7.5-8.1x
with Agno too; with every order in turn, 9.8-10.4x and 10.5x; at --block 20, 17.1x.

PostgreSQL work happens in a fresh database on the server (KERN_BENCH_PG_URL, default the local `test`
server), dropped at the end. The peers are optional (`pip install -e '.[bench]'`); one that is not installed
is skipped and the output says so. The last lines are machine-readable:
    peers <db>: kern_ms=<x> [langgraph_ms=<y>] [agno_ms=<z>] floor_ms=<f> floor_implicit_ms=<g> kern_drift=<d>
(kern_drift: kern's last20/first20).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import random
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypedDict

from benchlib import PG_SERVER_URL, PostgresFloor, SqliteFloor, Stats, fresh_pg_database, summarize

from kern.db.postgres import PostgresDb as KernPostgresDb
from kern.db.sqlite import SqliteDb as KernSqliteDb

os.environ.setdefault("AGNO_TELEMETRY", "false")

FRAMEWORKS = ("kern", "langgraph", "agno")


def confirm_cycles(workflow: Any, n: int) -> list[float]:
    """`n` runs of a workflow whose steps each need a confirmation (the same code on kern and Agno: the
    same documented API), timing each `run` and `continue_run` call in milliseconds."""
    out: list[float] = []
    for _ in range(n):
        start = time.perf_counter()
        run_output = workflow.run("input")
        out.append((time.perf_counter() - start) * 1000)
        while run_output.is_paused:
            for req in run_output.steps_requiring_confirmation:
                req.confirm()
            start = time.perf_counter()
            run_output = workflow.continue_run(run_output)
            out.append((time.perf_counter() - start) * 1000)
        assert run_output.content == "s3 done", run_output.content
    return out


class Contender(Protocol):
    label: str

    def cycles(self, n: int) -> list[float]:
        """Do `n` runs (the floor: `n` x 4 cycles) and return the milliseconds of each cycle."""
        ...

    def close(self) -> None: ...


class Skipped(Exception):
    """A peer that cannot run here (not installed); its message says why."""


# --- kern ----------------------------------------------------------------------------------------------


class Kern:
    def __init__(self, db: str, tmp: Path, pg_url: str) -> None:
        from kern.workflow import HumanReview, Step, StepInput, StepOutput, Workflow

        def step(name: str) -> Step:
            def run(step_input: StepInput) -> StepOutput:
                return StepOutput(content=f"{name} done")

            return Step(name=name, executor=run, human_review=HumanReview(requires_confirmation=True))

        self.label = "kern"
        self.db = (
            KernSqliteDb(db_file=tmp / "kern.db")
            if db == "sqlite"
            else KernPostgresDb(db_url=pg_url, application_name="kern-bench")
        )
        self.workflow = Workflow(name="bench-kern", db=self.db, steps=[step("s1"), step("s2"), step("s3")])

    def cycles(self, n: int) -> list[float]:
        return confirm_cycles(self.workflow, n)

    def close(self) -> None:
        from kern._sync import run_sync

        run_sync(self.db.close())


# --- Agno ----------------------------------------------------------------------------------------------


class Agno:
    def __init__(self, db: str, tmp: Path, pg_url: str) -> None:
        try:
            from agno.workflow import HumanReview, Step, StepInput, StepOutput, Workflow

            if db == "sqlite":
                from agno.db.sqlite import SqliteDb as AgnoSqliteDb
            else:
                import psycopg  # noqa: F401  (Agno's PostgresDb runs on SQLAlchemy + psycopg 3)
                from agno.db.postgres import PostgresDb as AgnoPostgresDb
        except ImportError as exc:
            raise Skipped(f"agno ({db}): not installed ({exc.name})") from exc

        def step(name: str) -> Step:
            def run(step_input: StepInput) -> StepOutput:
                return StepOutput(content=f"{name} done")

            return Step(name=name, executor=run, human_review=HumanReview(requires_confirmation=True))

        self.label = "agno"
        self.db = (
            AgnoSqliteDb(db_file=str(tmp / "agno.db"))
            if db == "sqlite"
            else AgnoPostgresDb(db_url=pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
        )
        self.workflow = Workflow(
            name="bench-agno",
            db=self.db,
            steps=[step("s1"), step("s2"), step("s3")],
            session_id=uuid.uuid4().hex,
            telemetry=False,
        )

    def cycles(self, n: int) -> list[float]:
        return confirm_cycles(self.workflow, n)

    def close(self) -> None:
        self.db.db_engine.dispose()


# --- LangGraph -----------------------------------------------------------------------------------------


class LangGraph:
    def __init__(self, db: str, tmp: Path, pg_url: str) -> None:
        try:
            from langgraph.graph import END, START, StateGraph
            from langgraph.types import Command, interrupt

            if db == "sqlite":
                from langgraph.checkpoint.sqlite import SqliteSaver
            else:
                from langgraph.checkpoint.postgres import PostgresSaver
        except ImportError as exc:
            raise Skipped(f"langgraph ({db}): not installed ({exc.name})") from exc

        class State(TypedDict, total=False):
            input: str
            content: str

        def node(name: str) -> Callable[[State], dict[str, Any]]:
            def run(state: State) -> dict[str, Any]:
                if not interrupt(f"Run step '{name}'?"):  # the resume value: True confirms
                    return {}
                return {"content": f"{name} done"}

            return run

        self.label = "langgraph"
        self.command = Command
        self.stack = contextlib.ExitStack()
        if db == "sqlite":
            conn = sqlite3.connect(tmp / "langgraph.db", check_same_thread=False)
            self.stack.callback(conn.close)
            saver: Any = SqliteSaver(conn)
        else:
            saver = self.stack.enter_context(PostgresSaver.from_conn_string(pg_url))
        saver.setup()
        graph = StateGraph(State)
        for name in ("s1", "s2", "s3"):
            graph.add_node(name, node(name))
        graph.add_edge(START, "s1")
        graph.add_edge("s1", "s2")
        graph.add_edge("s2", "s3")
        graph.add_edge("s3", END)
        self.graph = graph.compile(checkpointer=saver)

    def cycles(self, n: int) -> list[float]:
        out: list[float] = []
        for _ in range(n):
            config = {"configurable": {"thread_id": uuid.uuid4().hex}}
            start = time.perf_counter()
            state = self.graph.invoke({"input": "input"}, config)
            out.append((time.perf_counter() - start) * 1000)
            while "__interrupt__" in state:
                start = time.perf_counter()
                state = self.graph.invoke(self.command(resume=True), config)
                out.append((time.perf_counter() - start) * 1000)
            assert state["content"] == "s3 done", state
        return out

    def close(self) -> None:
        self.stack.close()


# --- the floor -----------------------------------------------------------------------------------------


class Floor:
    """The floor as a contender: 4 cycles per 'run', like the workflows."""

    label = "floor"

    def __init__(self, db: str, tmp: Path, pg_url: str) -> None:
        self.impl = SqliteFloor(tmp / "floor.db") if db == "sqlite" else PostgresFloor(pg_url)

    def cycles(self, n: int) -> list[float]:
        return self.impl.cycles(4 * n)

    def close(self) -> None:
        self.impl.close()


MAKERS: dict[str, Callable[[str, Path, str], Contender]] = {"kern": Kern, "langgraph": LangGraph, "agno": Agno}
NAMES = {
    ("langgraph", "sqlite"): "langgraph (SqliteSaver)",
    ("langgraph", "postgres"): "langgraph (PostgresSaver)",
    ("floor", "sqlite"): "floor (2 tx, sqlite3)",
    ("floor", "postgres"): "floor (2 tx, asyncpg)",
    ("floor_implicit", "sqlite"): "floor (2 implicit tx)",
    ("floor_implicit", "postgres"): "floor (2 implicit tx)",
}


def round_orders(count: int, rounds: int, seed: int = 14) -> list[tuple[int, ...]]:
    """The order of `count` contenders in each of `rounds` rounds: every permutation in turn (each set of
    them shuffled, with a fixed seed), so that each contender runs just after each other one about as often.
    (Rotating one order instead let a contender follow the same one in two rounds of three: with kern,
    LangGraph and the floor, the floor ran after LangGraph, whose PostgreSQL traffic left the server awake,
    and kern after the floor.)"""
    every = list(itertools.permutations(range(count)))
    rng = random.Random(seed)
    orders: list[tuple[int, ...]] = []
    while len(orders) < rounds:
        rng.shuffle(every)
        orders.extend(every)
    return orders[:rounds]


def measure(contenders: list[Contender], runs: int, warmup: int, block: int = 1) -> dict[str, list[float]]:
    """Warm each contender up alike, then interleave their runs `block` at a time, in `round_orders`."""
    for contender in contenders:
        contender.cycles(warmup)
    times: dict[str, list[float]] = {c.label: [] for c in contenders}
    starts = range(0, runs, block)
    for start, order in zip(starts, round_orders(len(contenders), len(starts)), strict=True):
        for index in order:
            contender = contenders[index]
            times[contender.label].extend(contender.cycles(min(block, runs - start)))
    return times


def bench_db(
    db: str, frameworks: list[str], runs: int, warmup: int, notes: list[str], block: int = 1
) -> dict[str, Stats]:
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kern-peers-")))
        pg_url = stack.enter_context(fresh_pg_database(PG_SERVER_URL)) if db == "postgres" else ""
        contenders: list[Contender] = []
        for name in frameworks:
            try:
                contender = MAKERS[name](db, tmp, pg_url)
            except Skipped as exc:
                notes.append(f"skipped {exc}: pip install -e '.[bench]'")
                continue
            stack.callback(contender.close)
            contenders.append(contender)
        floor = Floor(db, tmp, pg_url)
        stack.callback(floor.close)
        contenders.append(floor)
        times = measure(contenders, runs, warmup, block)
        times["floor_implicit"] = floor.impl.single_ms[-len(times["floor"]) :]
        return {label: summarize(ms) for label, ms in times.items()}


def report(results: dict[str, dict[str, Stats]], runs: int, warmup: int, notes: list[str]) -> None:
    print(
        f"{runs} runs x 3 confirmations per contender (4 cycles a run: the run and 3 resumes), interleaved, "
        f"after {warmup} warm-up runs each; milliseconds per cycle"
    )
    for note in notes:
        print(note)
    header = f"{'db':<10}{'contender':<28}{'cycles':>7}{'median':>9}{'p90':>9}{'p99':>9}"
    print(header + f"{'first20':>9}{'last20':>9}{'l20/f20':>9}{'x kern':>9}")
    for db, stats in results.items():
        kern = stats.get("kern")
        for label, s in stats.items():
            vs_kern = f"{s.median / kern.median:>9.2f}" if kern else f"{'-':>9}"
            print(
                f"{db:<10}{NAMES.get((label, db), label):<28}{s.cycles:>7}{s.median:>9.3f}{s.p90:>9.3f}{s.p99:>9.3f}"
                f"{s.first20:>9.3f}{s.last20:>9.3f}{s.drift:>9.2f}{vs_kern}"
            )
    print("x kern: this median / kern's median (above 1: slower than kern)")
    for db, stats in results.items():
        if "kern" in stats:
            kern, floor, implicit = stats["kern"], stats["floor"], stats["floor_implicit"]
            peers = ", ".join(
                f"{label} / kern = {s.median / kern.median:.2f}"
                for label, s in stats.items()
                if label in MAKERS and label != "kern"
            )
            print(
                f"{db}: kern / floor = {kern.median / floor.median:.2f} "
                f"(/ implicit-transaction floor = {kern.median / implicit.median:.2f}); {peers}"
            )
    for db, stats in results.items():
        line = " ".join(f"{label}_ms={s.median:.3f}" for label, s in stats.items())
        drift = f" kern_drift={stats['kern'].drift:.2f}" if "kern" in stats else ""
        print(f"peers {db}: {line}{drift}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--only", default=",".join(FRAMEWORKS), help="comma-separated: kern,langgraph,agno")
    parser.add_argument("--warmup", type=int, default=5, help="runs of each contender before measuring")
    parser.add_argument("--block", type=int, default=1, help="runs of one contender in a row, per round")
    args = parser.parse_args()
    frameworks = [f.strip() for f in args.only.split(",") if f.strip()]
    unknown = set(frameworks) - set(FRAMEWORKS)
    if unknown:
        parser.error(f"--only: unknown {sorted(unknown)}; choose from {', '.join(FRAMEWORKS)}")
    notes: list[str] = []
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results = {db: bench_db(db, frameworks, args.runs, args.warmup, notes, args.block) for db in dbs}
    report(results, args.runs, args.warmup, notes)


if __name__ == "__main__":
    main()
