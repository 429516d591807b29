"""Damaging a stored run by hand, as an operator's edit, a half-applied restore or a newer kern would: what
the poison-row tests (tests/test_poison_rows.py, tests/test_journal_checks.py) start from."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from kern._sync import run_sync
from kern.db import schema
from kern.db.base import BaseDb
from kern.db.postgres import PostgresDb


def set_columns(db: BaseDb, run_id: str, **values: Any) -> None:
    """Overwrite columns of a run's row (JSON columns take Python values)."""
    statement = schema.runs.update().where(schema.runs.c.run_id == run_id).values(**values)
    run_sync(db.run_transaction(lambda conn: conn.execute(statement)))


def edit_output(db: BaseDb, run_id: str, edit: Any) -> None:
    """Change the stored output in place with `edit(output)`."""
    output = run_sync(db.load_run(run_id)).output
    edit(output)
    set_columns(db, run_id, output=output)


def edit_journal(db: BaseDb, run_id: str, edit: Any) -> None:
    journal = run_sync(db.load_run(run_id)).journal
    edit(journal)
    set_columns(db, run_id, journal=journal)


def cut_output(db: BaseDb, run_id: str, keep: int = 60) -> None:
    """Leave only the first `keep` characters of the stored output's JSON text. PostgreSQL's `json` column
    refuses text that is not JSON, so there the cut text is kept as a JSON string (what a tool that wrote
    the text as a value would leave); SQLite keeps the cut text itself."""
    text = json.dumps(run_sync(db.load_run(run_id)).output)[:keep]
    if isinstance(db, PostgresDb):
        set_columns(db, run_id, output=text)
        return
    statement = sa.text("UPDATE kern_runs SET output = :text WHERE run_id = :run_id")
    run_sync(db.run_transaction(lambda conn: conn.execute(statement, {"text": text, "run_id": run_id})))
