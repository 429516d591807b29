"""The bot's row records (a card, a pause message, a DM copy, an owed message, a delivery), as values; how
they are written is `bot.store.transactions`."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bot.store.tables import pause_copies
from bot.store.transactions import inserts_ignoring
from kern.db.base import BaseDb
from kern.db.hot import Tx


@dataclass
class Card:
    """A run card: where it lives in Slack, who started the run, in which workspace (`team_id`: '' in
    token mode; `bot.slack.workspaces`)."""

    run_id: str
    workflow: str
    channel: str
    ts: str
    started_by: str
    input: str | None = None
    team_id: str = ""


@dataclass
class OwedMessage:
    """One outbox row: what to show (`kind`) about which run and pause."""

    id: int
    run_id: str
    kind: str
    requirement_id: str | None
    detail: dict[str, Any] | None
    attempts: int
    # Taken from another process that held it (and died): it may have been sent without being recorded.
    taken_over: bool = False


@dataclass
class PauseMessage:
    requirement_id: str
    run_id: str
    channel: str
    ts: str
    status: str
    decided_by: str | None
    outcome: str | None


@dataclass
class PauseCopy:
    """A pause message's copy sent by DM to `recipient`."""

    requirement_id: str
    recipient: str
    run_id: str
    channel: str
    ts: str
    team_id: str = ""


@dataclass
class Delivery:
    """What sending an owed message did: a pause message (or a DM copy of it, or a reminder) posted, or a
    pause decided (with its outcome); `dropped`: nothing could be shown (the run has no card here, or a
    reminder's pause was decided before it was sent)."""

    message: OwedMessage
    pause: PauseMessage | None = None
    copy: PauseCopy | None = None
    outcome: str | None = None
    dropped: bool = False
    recorded: bool = False  # its pause message or copy is already recorded (the outbox does it at once)
    posted: tuple[str, str] | None = None  # a reminder posted: (channel, ts), kept in its row to redraw it decided


def insert_copy(tx: Tx, db: BaseDb, copy: PauseCopy) -> None:
    """Remember where a DM copy lives (once: a repeated delivery finds it and does not post again)."""
    insert, _select = inserts_ignoring(db, pause_copies, (*vars(copy), "posted_at"))
    tx.execute(insert, {**vars(copy), "posted_at": time.time()})
