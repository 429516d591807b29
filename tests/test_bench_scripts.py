"""The benchmark scripts keep working (run small; their numbers are read by people, not asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_script(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_pause_cycle_prints_its_summary() -> None:
    out = run_script("bench/pause_cycle.py", "--db", "sqlite", "--runs", "5", "--warmup", "1")
    assert re.search(r"^pause_cycle sqlite: median_ms=[\d.]+ ", out.splitlines()[-1])


def test_bot_load_prints_its_table() -> None:
    out = run_script("bench/bot_load.py", "--runs", "5")
    lines = out.splitlines()
    assert "Slack errors: 0" in lines[0]
    for row in ("click ack, burst of 5", "click ack, while 5 resume", "click to next card, one click"):
        assert any(line.startswith(row) for line in lines), row
    assert re.match(r"bot_load sqlite: ack_p50_ms=[\d.]+ ack_p99_ms=[\d.]+ ", lines[-1])
