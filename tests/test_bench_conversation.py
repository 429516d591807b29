"""bench/conversation.py keeps working (run small; its numbers are read by people, not asserted): every
answer arrives whole, and it prints its table and its machine-readable line."""

from __future__ import annotations

import re

from tests.test_bench_scripts import run_script


def test_conversation_bench_prints_its_table() -> None:
    out = run_script("bench/conversation.py", "--conversations", "4", "--latency", "2", "--clicks-after", "0")
    lines = out.splitlines()
    assert "| mention ack to first streamed chunk (ms) | 2 |" in out, out
    assert re.match(
        r"conversation sqlite: first_chunk_median_ms=[\d.]+ first_chunk_p99_ms=[\d.]+ answers_ok=4/4 "
        r"lost_or_reordered=0 click_ack_p99_ms=[\d.]+ stream_s=[\d.]+$",
        lines[-1],
    ), lines[-1]
