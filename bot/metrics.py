"""What a bot process exposes at GET /metrics, in the Prometheus text format (`prometheus-client`).

Two kinds of numbers, chosen so that several replicas on one database stay correct:

- State of the database (runs by status, open pauses, outbox backlog) is read when scraped, in one read
  transaction of two indexed queries. Every replica reports the same values: aggregate them with `max`,
  not `sum`.
- Events of this process (decisions, click ack latency, takeovers, its sweeper's lag) are counted where
  they happen, in memory. Each replica counts its own: `sum` them.

Each bot owns its own `CollectorRegistry`, so several bots in one process (tests, `kern-bot dev`) do not
share counters.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy.engine import Connection

from bot.tables import outbox
from kern.db.base import BaseDb
from kern.db.schema import runs
from kern.run.base import RunStatus

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Click acks are expected in about a millisecond; Slack gives up at 3 s.
ACK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0)
STATUSES = tuple(dict.fromkeys(RunStatus))  # each status once (the lower-case names are aliases)


class Metrics:
    """The metrics of one bot. Names (the `_total` suffix is added by the text format):

    kern_runs{status}, kern_bot_open_pauses, kern_bot_outbox_backlog, kern_bot_outbox_failed (read on scrape);
    kern_bot_decisions_total{source="person"|"timeout"}, kern_bot_click_ack_seconds (histogram),
    kern_bot_takeovers_total, kern_bot_sweep_lag_seconds, kern_bot_sweep_duration_seconds (this process).
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Gauge(
            "kern_runs", "Runs in the database, by status (same on every replica).", ["status"], registry=r
        )
        self.open_pauses = Gauge(
            "kern_bot_open_pauses", "Pauses waiting for a person: PAUSED runs, one pause each.", registry=r
        )
        self.outbox_backlog = Gauge(
            "kern_bot_outbox_backlog", "Messages owed to Slack and not yet delivered (pending outbox rows).", registry=r
        )
        self.outbox_failed = Gauge(
            "kern_bot_outbox_failed", "Messages Slack refused for good, not retried (failed outbox rows).", registry=r
        )
        self.decisions = Counter(
            "kern_bot_decisions",
            "Pauses decided by this process: by a person (clicks, forms, votes) or by a deadline.",
            ["source"],
            registry=r,
        )
        for source in ("person", "timeout"):
            self.decisions.labels(source)
        self.click_ack = Histogram(
            "kern_bot_click_ack_seconds",
            "Time from reading a click's request to answering it (its ack).",
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.takeovers = Counter(
            "kern_bot_takeovers", "Runs whose process had died, taken over by this process.", registry=r
        )
        self._started = time.monotonic()
        self._last_sweep: float | None = None
        self.sweep_lag = Gauge(
            "kern_bot_sweep_lag_seconds",
            "Seconds since this process last completed a sweep (since start-up if it never did).",
            registry=r,
        )
        self.sweep_lag.set_function(lambda: time.monotonic() - (self._last_sweep or self._started))
        self.sweep_duration = Gauge(
            "kern_bot_sweep_duration_seconds", "How long this process's last completed sweep took.", registry=r
        )

    def swept(self, started: float) -> None:
        """A sweep that began at `started` (time.monotonic()) has completed."""
        self._last_sweep = time.monotonic()
        self.sweep_duration.set(self._last_sweep - started)

    async def render(self, db: BaseDb) -> bytes:
        """The text exposition, after reading the database's numbers."""
        from bot.migrations import BOT

        by_status, outbox_rows = await db.run_transaction(_read_state, write=False, tables=BOT)
        for status in STATUSES:
            self.runs.labels(status.value).set(by_status.get(status.value, 0))
        self.open_pauses.set(by_status.get(RunStatus.PAUSED.value, 0))
        self.outbox_backlog.set(outbox_rows.get("pending", 0))
        self.outbox_failed.set(outbox_rows.get("failed", 0))
        return generate_latest(self.registry)


# Runs by status, counted from an index (ix_kern_runs_lease, whose first column is the status) rather than
# by reading every run's row.
RUNS_BY_STATUS = sa.select(runs.c.status, sa.func.count()).group_by(runs.c.status)


OUTBOX_BY_STATUS = (
    sa.select(outbox.c.status, sa.func.count())
    .where(outbox.c.status.in_(("pending", "failed")))
    .group_by(outbox.c.status)
)


def _read_state(conn: Connection) -> tuple[dict[str, int], dict[str, int]]:
    # Both queries are answered from indexes: ix_kern_runs_lease (status, lease_until), ix_kern_bot_outbox_due.
    by_status: dict[str, int] = dict(conn.execute(RUNS_BY_STATUS).all())
    return by_status, dict(conn.execute(OUTBOX_BY_STATUS).all())
