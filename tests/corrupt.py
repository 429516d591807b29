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


def set_output_text(db: BaseDb, run_id: str, text: str) -> None:
    """Store `text` as the output's JSON text as it is (it must be JSON for PostgreSQL's column)."""
    cast = "CAST(:text AS json)" if isinstance(db, PostgresDb) else ":text"
    statement = sa.text(f"UPDATE kern_runs SET output = {cast} WHERE run_id = :run_id")
    run_sync(db.run_transaction(lambda conn: conn.execute(statement, {"text": text, "run_id": run_id})))


def _pop_requirements(output: dict[str, Any]) -> None:
    del output["step_requirements"]


def _newer_kind(output: dict[str, Any]) -> None:
    output["step_requirements"][-1]["kind"] = "quorum_v9"


def _archived(output: dict[str, Any]) -> None:
    output["status"] = "ARCHIVED"


def _huge_number(db: BaseDb, run_id: str) -> None:
    text = json.dumps(run_sync(db.load_run(run_id)).output)
    set_output_text(db, run_id, text.replace('"input": "', '"count": ' + "7" * 5000 + ', "input": "', 1))


# Each way a stored run is damaged, and what `CorruptRunError.problem` says of it.
DAMAGES: dict[str, tuple[Any, str]] = {
    "cut off": (cut_output, r"its stored output (cannot be read as JSON \(cut off\?\)|is a string where a JSON)"),
    "unknown status": (lambda db, run_id: edit_output(db, run_id, _archived), r"status 'ARCHIVED' is not one"),
    "newer pause kind": (lambda db, run_id: edit_output(db, run_id, _newer_kind), r"of kind 'quorum_v9'"),
    "no step_requirements": (lambda db, run_id: edit_output(db, run_id, _pop_requirements), r"no step_requirements"),
    "journal a list": (lambda db, run_id: set_columns(db, run_id, journal=[1, 2]), r"journal is a list where"),
    "5,000-digit number": (_huge_number, r"cannot be read as JSON .*4300 digits"),
}
