"""kern-bot's tables under Alembic, beside kern's own set and with their own version table.

The machinery and how to add a revision: `kern.db.migrations` (here: `kern-bot db revision -m "..."`).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Connection

from bot.store.tables import cards, metadata
from kern.db.migrations import AUTO_UPGRADE_ENV, MigrationSet


def _legacy(_conn: Connection, tables: set[str]) -> bool:
    # Before migrations the bot created its three tables together, on first use.
    return cards.name in tables


BOT = MigrationSet(
    component="kern-bot",
    directory=Path(__file__).parent,
    version_table="kern_bot_alembic_version",
    metadata=metadata,
    legacy=_legacy,
    upgrade_hint=f"run `kern-bot db upgrade`, or set {AUTO_UPGRADE_ENV}=1 to upgrade at start-up",
)
