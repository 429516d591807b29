"""The benchmark scripts keep working (run small; their numbers are read by people, not asserted)."""

from __future__ import annotations

import importlib.util
import itertools
import operator
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import PG_URL, require_postgres

ROOT = Path(__file__).resolve().parent.parent


def run_script(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "KERN_BENCH_PG_URL": PG_URL, **(env or {})},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_pause_cycle_prints_its_summary() -> None:
    out = run_script("bench/pause_cycle.py", "--db", "sqlite", "--runs", "5", "--warmup", "1")
    assert re.search(r"^pause_cycle sqlite: median_ms=[\d.]+ ", out.splitlines()[-1])


def test_pause_cycle_floor_and_paused_runs() -> None:
    out = run_script(
        "bench/pause_cycle.py", "--db", "sqlite", "--runs", "3", "--warmup", "1", "--floor", "--paused", "500",
        "--samples", "20",
    )  # fmt: skip
    lines = out.splitlines()
    assert any(line.startswith("floor (sqlite3 WAL+NORMAL") and "x the floor" in line for line in lines), out
    assert any(line.startswith("500 paused runs") for line in lines), out
    assert re.match(
        r"pause_cycle sqlite: median_ms=[\d.]+ first20_ms=[\d.]+ last20_ms=[\d.]+ floor_ms=[\d.]+ "
        r"paused_median_ms=[\d.]+ paused_p99_ms=[\d.]+$",
        lines[-1],
    ), lines[-1]


def test_pause_cycle_with_a_gap_between_runs() -> None:
    out = run_script("bench/pause_cycle.py", "--db", "sqlite", "--runs", "3", "--warmup", "1", "--gap", "20")
    lines = out.splitlines()
    assert "(each run followed by 20 ms of sleep)" in lines, out
    assert re.match(r"pause_cycle sqlite: median_ms=[\d.]+ .* gap_ms=20$", lines[-1]), lines[-1]


def test_pause_cycle_refuses_a_gap_it_cannot_keep() -> None:
    for bad in (("--gap", "-1"), ("--gap", "5", "--api", "async")):
        done = subprocess.run(
            [sys.executable, "bench/pause_cycle.py", "--runs", "1", *bad],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2 and "--gap takes a duration of 0 ms or more, with --api sync" in done.stderr


def test_pause_cycle_paused_runs_on_postgres() -> None:
    require_postgres()
    out = run_script("bench/pause_cycle.py", "--db", "postgres", "--runs", "2", "--warmup", "1", "--paused", "50",
                     "--samples", "10", "--floor")  # fmt: skip
    assert re.match(r"pause_cycle postgres: .* floor_ms=[\d.]+ paused_median_ms=[\d.]+ ", out.splitlines()[-1])


def test_peers_runs_kern_alone() -> None:
    require_postgres()
    out = run_script("bench/peers.py", "--runs", "3", "--warmup", "1", "--only", "kern")
    lines = out.splitlines()
    for db in ("sqlite", "postgres"):
        assert any(re.match(rf"{db} +kern +12 ", line) for line in lines), out
        assert any(line.startswith(f"{db}: kern / floor = ") for line in lines), out
    assert re.match(
        r"peers sqlite: kern_ms=[\d.]+ floor_ms=[\d.]+ floor_implicit_ms=[\d.]+ kern_drift=[\d.]+$", lines[-2]
    ), out
    assert re.match(r"peers postgres: kern_ms=[\d.]+ floor_ms=[\d.]+ ", lines[-1]), out


def test_peers_in_blocks_runs_every_run_once() -> None:
    """--block 2 with 3 runs: a round of 2 and a round of 1, 4 cycles a run, for kern and the floor alike."""
    args = ("--runs", "3", "--warmup", "1", "--only", "kern", "--db", "sqlite", "--block", "2")
    out = run_script("bench/peers.py", *args)
    lines = out.splitlines()
    assert any(re.match(r"sqlite +kern +12 ", line) for line in lines), out
    assert any(re.match(r"sqlite +floor \(2 tx, sqlite3\) +12 ", line) for line in lines), out


def test_peers_says_which_peers_it_skipped(tmp_path: Path) -> None:
    """CI has no peers installed: peers.py must skip them and say so (made to happen here by shadowing them
    with packages whose import fails)."""
    for name in ("langgraph", "agno"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('not installed', name='{name}')\n")
    out = run_script(
        "bench/peers.py", "--runs", "2", "--warmup", "1", "--db", "sqlite", env={"PYTHONPATH": str(tmp_path)}
    )
    assert "skipped langgraph (sqlite): not installed (langgraph)" in out, out
    assert "skipped agno (sqlite): not installed (agno)" in out, out
    assert re.match(r"peers sqlite: kern_ms=[\d.]+ floor_ms=", out.splitlines()[-1]), out


def test_bot_load_prints_its_table() -> None:
    out = run_script("bench/bot_load.py", "--runs", "5")
    lines = out.splitlines()
    assert "Slack errors: 0" in lines[0]
    for row in ("click ack, burst of 5", "click ack, while 5 resume", "click to next card, one click"):
        assert any(line.startswith(row) for line in lines), row
    assert re.match(r"bot_load sqlite: ack_p50_ms=[\d.]+ ack_p99_ms=[\d.]+ ", lines[-1])


def test_bot_load_quorum_sends_both_votes() -> None:
    out = run_script("bench/bot_load.py", "--runs", "5", "--quorum")
    lines = out.splitlines()
    assert "(2-of-M votes)" in lines[0] and "Slack errors: 0" in lines[0]
    assert any(line.startswith("click ack, burst of 10") for line in lines), out  # two votes per run
    assert re.match(r"bot_load sqlite quorum: ack_p50_ms=[\d.]+ ack_p99_ms=[\d.]+ ", lines[-1])


def test_targets_runs_every_benchmark_and_says_what_it_could_not_measure(tmp_path: Path) -> None:
    """Tiny run counts (numbers meaningless); LangGraph shadowed as not installed, as in CI: its rows say so,
    the other checks are judged (a target with both is "partly measured" unless one of them failed)."""
    require_postgres()
    (tmp_path / "langgraph").mkdir()
    (tmp_path / "langgraph" / "__init__.py").write_text("raise ImportError('not installed', name='langgraph')\n")
    out = run_script("bench/targets.py", "--scale", "0.001", env={"PYTHONPATH": str(tmp_path)})
    lines = out.splitlines()
    assert "peers: 3 runs on SQLite, 3 on PostgreSQL; pause_cycle --floor: 3 runs; 100 paused runs" in out, out
    row = next(line for line in lines if "SQLite: LangGraph / kern" in line)
    assert row.endswith(" -  not measured"), row
    beside = next(line for line in lines if "kern / floor (peers, beside LangGraph)" in line)
    assert beside.endswith(" -  not measured (information, not judged)"), beside
    paused = next(line for line in lines if "paused runs: median ms" in line)
    assert re.search(r"<=2 +[\d.]+ +[01]/1$", paused), paused
    assert re.match(
        r"targets: 1=partly measured 2=(partly measured|not met) 3=(met|not met) 4=(met|not met)$", lines[-1]
    )


def test_targets_stops_with_the_failing_benchmarks_error() -> None:
    done = subprocess.run(
        [sys.executable, "bench/targets.py", "--scale", "0.001"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "KERN_BENCH_PG_URL": "postgresql://postgres@127.0.0.1:1/nowhere"},
    )
    assert done.returncode == 1, done.stdout
    assert "peers.py --db postgres --only kern,langgraph --runs 3 failed:" in done.stderr, done.stderr[-2000:]


def test_targets_refuses_nonsense_counts() -> None:
    for bad in (("--repeat", "0"), ("--scale", "0")):
        done = subprocess.run(
            [sys.executable, "bench/targets.py", *bad], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2 and "--repeat takes a count of 1 or more, --scale a number above 0" in done.stderr


def test_targets_prints_an_information_row_but_judges_without_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = importlib.util.spec_from_file_location("bench_targets", ROOT / "bench" / "targets.py")
    assert spec is not None and spec.loader is not None
    targets = importlib.util.module_from_spec(spec)
    sys.modules["bench_targets"] = targets  # (its dataclasses look their module up there)
    try:
        spec.loader.exec_module(targets)
    finally:
        del sys.modules["bench_targets"]
    found = [
        targets.Check(2, "judged", 1.5, operator.le, "<=", measured=[1.2, 1.3]),
        targets.Check(2, "beside", 1.5, operator.le, "<=", judged=False, measured=[1.1, 1.8]),
        targets.Check(3, "judged too", 2, operator.le, "<=", measured=[1.0, 2.5]),
    ]
    targets.report(found, 2)
    lines = capsys.readouterr().out.splitlines()
    assert next(line for line in lines if "beside" in line).endswith("1/2 (information, not judged)")
    assert lines[-1] == "targets: 2=met 3=not met"  # the failing informational row does not fail target 2


def test_peers_round_orders_let_each_contender_follow_each_other_alike() -> None:
    sys.path.insert(0, str(ROOT / "bench"))  # peers.py imports benchlib from there
    try:
        spec = importlib.util.spec_from_file_location("bench_peers", ROOT / "bench" / "peers.py")
        assert spec is not None and spec.loader is not None
        peers = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(peers)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    round_orders = peers.round_orders
    for count in (2, 3, 4):
        orders = round_orders(count, 600)
        assert len(orders) == 600 and all(sorted(order) == list(range(count)) for order in orders)
        sequence = [index for order in orders for index in order]
        followed = Counter((a, b) for a, b in itertools.pairwise(sequence) if a != b)
        assert len(followed) == count * (count - 1), followed
        assert max(followed.values()) <= 1.1 * min(followed.values()), followed  # rotating one order: 2 to 1
    assert round_orders(3, 50) == round_orders(3, 50)  # the same orders every time (a fixed seed)
