"""`python -m kern.db upgrade <db>`: kern's tables to the newest revision, for kern used without kern-bot.

`<db>` is a SQLite file or a postgresql:// URL. (kern-bot users: `kern-bot db upgrade` upgrades the
bot's tables too.) `python -m kern.db revision -m "..."` writes the next revision (for kern developers).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from kern.db.base import BaseDb
from kern.exceptions import SchemaVersionError


def open_db(target: str) -> BaseDb:
    """The store a SQLite path or a postgresql:// URL names."""
    if target.startswith(("postgres://", "postgresql://", "postgresql+")):
        from kern.db.postgres import PostgresDb

        return PostgresDb(db_url=target)
    from kern.db.sqlite import SqliteDb

    return SqliteDb(db_file=target)


async def _upgrade(target: str) -> list[str]:
    db = open_db(target)
    try:
        return await db.upgrade()
    finally:
        await db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kern.db", description="kern's database tables")
    sub = parser.add_subparsers(dest="command", required=True)
    upgrade = sub.add_parser("upgrade", help="upgrade kern's tables to the newest revision (safe to repeat)")
    upgrade.add_argument("db", help="a SQLite file or a postgresql:// URL")
    revision = sub.add_parser("revision", help="for kern developers: write the next revision of kern's tables")
    revision.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)
    if args.command == "revision":
        from kern.db.migrations import KERN

        print(f"wrote {KERN.new_revision(args.message)}; read it before committing it")
        return 0
    try:
        for line in asyncio.run(_upgrade(args.db)):
            print(line)
    except SchemaVersionError as exc:
        print(f"kern.db: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
