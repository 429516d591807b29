"""Migrations: a database made before them (a committed fixture with paused runs) is refused, upgraded by
`kern-bot db upgrade` and its runs finish; fresh databases end at the newest revision; unknown revisions
are refused with one line; the revisions, run from nothing, give exactly the tables in code.

PostgreSQL tests use a database of their own (created and dropped here), never the shared tables.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from bot.migrations import BOT
from bot.store import BotStore
from kern.db import migrations
from kern.db.base import BaseDb
from kern.db.migrations import BASELINE, KERN, MigrationSet
from kern.db.postgres import asyncpg_url
from kern.exceptions import SchemaVersionError
from kern.workflow import RunStatus
from tests.conftest import PG_URL, require_postgres
from tests.fixtures import kern_v1
from tests.flows import open_db

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).parent / "fixtures" / "kern_v1.db"
CONFIRM_RUN = "e5ff295bdc874ac39702576f06de41b2"  # paused at "deploy" (a confirmation), with a bot card and pause
FORM_RUN = "8e444eb1a6424d7c9bc36decacc88a91"  # paused at "report" (a form)
DONE_RUN = "81eaeece58a24a969977b9ddd3cf0705"
SLACK_ENV = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "s", "SLACK_API_URL": "http://127.0.0.1:9/api/"}
T = TypeVar("T")


def upgraded(component: str, start: str, head: str, line: str) -> bool:
    """`line` says `component` was upgraded from `start` to `head`, running every revision in between."""
    ran = [f"{n:04d} (" for n in range(int(start) + 1, int(head) + 1)]
    prefix = f"{component}: upgraded from revision {start} to {head}: ran "
    return line.startswith(prefix) and all(r in line for r in ran)


def kern_with_test_revision(directory: Path) -> MigrationSet:
    """kern's migration set plus one revision written here (a new nullable column on kern_runs), so an
    upgrade has something to do whatever the newest real revision is."""
    directory.mkdir(parents=True, exist_ok=True)
    rev = f"{int(KERN.head) + 1:04d}"
    (directory / f"{rev}_test_note.py").write_text(
        f'''"""A test revision."""
import sqlalchemy as sa
from alembic import op

revision = "{rev}"
down_revision = "{KERN.head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("kern_runs") as batch:
        batch.add_column(sa.Column("test_note", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("kern_runs") as batch:
        batch.drop_column("test_note")
'''
    )
    return dataclasses.replace(KERN, extra_version_locations=(directory,))


# The CLI, in a subprocess, with kern's set extended as above: `python -c CLI_WITH_TEST_REVISION <dir> <args>`.
CLI_WITH_TEST_REVISION = """
import sys
from pathlib import Path
from kern.db import migrations
from tests.test_migrations import kern_with_test_revision
migrations.KERN = kern_with_test_revision(Path(sys.argv[1]))
from bot.cli import main
sys.exit(main(sys.argv[2:]))
"""


def kern_bot(args: list[str], db: str, *, revisions: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != migrations.AUTO_UPGRADE_ENV}
    command = [sys.executable, "-m", "bot.cli", *args]
    if revisions is not None:
        command = [sys.executable, "-c", CLI_WITH_TEST_REVISION, str(revisions), *args]
    return subprocess.run(
        command, cwd=ROOT, env={**base, "KERN_DB": db, **env}, capture_output=True, text=True, timeout=120
    )


async def in_db(target: str, body: Callable[[Connection], T]) -> T:
    """`body(conn)` in one transaction on a SQLite file or a PostgreSQL URL, outside any kern store."""
    if target.startswith("postgresql"):
        engine = create_async_engine(asyncpg_url(target))
        try:
            async with engine.begin() as conn:
                return await conn.run_sync(body)
        finally:
            await engine.dispose()
    sync_engine = sa.create_engine(f"sqlite:///{target}")
    try:
        with sync_engine.begin() as conn:
            return body(conn)
    finally:
        sync_engine.dispose()


async def versions(target: str) -> dict[str, str | None]:
    """The revision of each set, read straight from the database."""

    def read(conn: Connection) -> dict[str, str | None]:
        tables = set(sa.inspect(conn).get_table_names())
        return {s.component: s.current(conn, tables) for s in (KERN, BOT)}

    return await in_db(target, read)


@pytest.fixture
def v1_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the database made before migrations."""
    monkeypatch.delenv(migrations.AUTO_UPGRADE_ENV, raising=False)
    path = tmp_path / "kern_v1.db"
    shutil.copy(FIXTURE, path)
    return path


def _admin(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_URL.replace("postgresql://", "postgres://"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL database of this test's own (the shared database's tables stay untouched)."""
    require_postgres()
    name = f"kern_mig_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # FORCE: only this test's own connections


@pytest.fixture
def target(db_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A new empty database: a SQLite file, or a PostgreSQL database of this test's own."""
    if db_kind == "sqlite":
        return str(tmp_path / "fresh.db")
    return request.getfixturevalue("pg_url")


async def finish_v1_runs(db: BaseDb) -> None:
    """Continue the fixture's paused runs with today's code, to the end."""
    flows = kern_v1.workflows(db)
    confirm = await flows[kern_v1.CONFIRM].aget_run(CONFIRM_RUN)
    assert confirm.status == RunStatus.PAUSED
    confirm.step_requirements[-1].confirm(by="U2")
    out = await flows[kern_v1.CONFIRM].acontinue_run(confirm)
    assert (out.status, out.content) == (RunStatus.COMPLETED, "deploy<plan<svc>>")
    form = await flows[kern_v1.FORM].aget_run(FORM_RUN)
    form.step_requirements[-1].set_user_input(title="Weekly", format="csv", by="U3")
    out = await flows[kern_v1.FORM].acontinue_run(form)
    assert (out.status, out.content) == (RunStatus.COMPLETED, "report<Weekly|csv>")
    assert (await flows[kern_v1.CONFIRM].aget_run(DONE_RUN)).status == RunStatus.COMPLETED
    store = BotStore(db)
    card = await store.card(CONFIRM_RUN)
    assert card is not None and (card.channel, card.ts) == ("C1", "100.1")
    pause = await store.pause(confirm.step_requirements[-1].requirement_id)
    assert pause is not None and pause.status == "open"
    assert await store.copies(pause.requirement_id) == []  # 0004: DM copies, none for a pause made before


# ----- the database made before migrations ------------------------------------------------------------
async def test_v1_database_is_refused_then_upgraded_by_kern_bot_db_upgrade_and_its_runs_finish(
    v1_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    revisions = tmp_path / "revisions"
    monkeypatch.setattr(migrations, "KERN", kern_with_test_revision(revisions))
    head = migrations.KERN.head

    db = open_db(str(v1_db))
    with pytest.raises(SchemaVersionError) as refused:
        await kern_v1.workflows(db)[kern_v1.CONFIRM].aget_run(CONFIRM_RUN)
    await db.close()
    message = str(refused.value)
    assert "\n" not in message
    assert f"at schema revision {BASELINE}, this code needs {head}" in message
    assert "kern-bot db upgrade" in message and "KERN_DB_AUTO_UPGRADE=1" in message
    assert (refused.value.found, refused.value.expected) == (BASELINE, head)
    assert await versions(str(v1_db)) == {"kern": None, "kern-bot": None}  # the refusal changed nothing

    # `kern-bot serve` refuses to start on it, with the same line.
    started = kern_bot(["serve", "--port", "0"], str(v1_db), revisions=revisions, **SLACK_ENV)
    assert started.returncode == 2, started.stderr
    assert started.stderr.strip().splitlines()[-1] == f"kern-bot: {message}"
    assert "Traceback" not in started.stderr

    done = kern_bot(["db", "upgrade"], str(v1_db), revisions=revisions)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"kern: tables made before migrations recognised as revision {BASELINE}"
    assert upgraded("kern", BASELINE, head, lines[1]) and lines[1].endswith(f", {head} (A test revision.)")
    assert lines[2] == f"kern-bot: tables made before migrations recognised as revision {BASELINE}"
    assert lines[3] == f"kern-bot: at revision {BOT.head}, the newest" or upgraded(
        "kern-bot", BASELINE, BOT.head, lines[3]
    )
    assert len(lines) == 4
    assert await versions(str(v1_db)) == {"kern": head, "kern-bot": BOT.head}

    again = kern_bot(["db", "upgrade"], str(v1_db), revisions=revisions)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        f"kern: already at revision {head}, the newest; nothing to do",
        f"kern-bot: already at revision {BOT.head}, the newest; nothing to do",
    ]

    db = open_db(str(v1_db))
    try:
        await finish_v1_runs(db)
    finally:
        await db.close()


async def test_v1_database_with_the_real_revisions(v1_db: Path) -> None:
    """The plain `kern-bot db upgrade` (only the revisions shipped): to the newest, twice, then runs finish."""
    first = kern_bot(["db", "upgrade"], str(v1_db))
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0] == f"kern: tables made before migrations recognised as revision {BASELINE}"
    assert await versions(str(v1_db)) == {"kern": KERN.head, "kern-bot": BOT.head}
    second = kern_bot(["db", "upgrade"], str(v1_db))
    assert second.returncode == 0 and "nothing to do" in second.stdout
    db = open_db(str(v1_db))
    try:
        await finish_v1_runs(db)
    finally:
        await db.close()


async def test_auto_upgrade_at_first_use(v1_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(migrations, "KERN", kern_with_test_revision(tmp_path / "revisions"))
    monkeypatch.setenv(migrations.AUTO_UPGRADE_ENV, "1")
    db = open_db(str(v1_db))
    try:
        await finish_v1_runs(db)
    finally:
        await db.close()
    assert await versions(str(v1_db)) == {"kern": migrations.KERN.head, "kern-bot": BOT.head}


def test_kern_bot_serve_upgrades_at_start_up_with_KERN_DB_AUTO_UPGRADE(v1_db: Path, tmp_path: Path) -> None:
    revisions = tmp_path / "revisions"
    head = kern_with_test_revision(revisions).head
    env = {"KERN_DB": str(v1_db), **SLACK_ENV, migrations.AUTO_UPGRADE_ENV: "1"}
    command = [sys.executable, "-c", CLI_WITH_TEST_REVISION, str(revisions), "serve", "--port", "0"]
    server = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline().strip() for _ in range(5)]
    finally:
        server.kill()
        server.wait(10)
    assert any(line.startswith("kern-bot: ") and upgraded("kern", BASELINE, head, line[10:]) for line in lines)
    assert lines[-1].startswith("kern-bot: serving /slack/events")
    assert asyncio.run(versions(str(v1_db)))["kern"] == head


# ----- fresh, unknown and concurrent ----------------------------------------------------------------


async def test_fresh_database_ends_at_the_newest_revision(target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(migrations.AUTO_UPGRADE_ENV, raising=False)
    db = open_db(target)
    try:
        assert await BotStore(db).card("nothing") is None
    finally:
        await db.close()
    assert await versions(target) == {"kern": KERN.head, "kern-bot": BOT.head}
    done = kern_bot(["db", "upgrade"], target)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"kern: already at revision {KERN.head}, the newest; nothing to do",
        f"kern-bot: already at revision {BOT.head}, the newest; nothing to do",
    ]


async def test_unknown_revision_is_refused_with_one_line(target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(migrations.AUTO_UPGRADE_ENV, "1")  # an upgrade cannot help: a newer kern wrote it
    db = open_db(target)
    await db.upgrade()
    await db.close()
    await in_db(
        target, lambda conn: conn.execute(sa.text("UPDATE kern_alembic_version SET version_num = 'a1b2c3d4e5f6'"))
    )

    db = open_db(target)
    with pytest.raises(SchemaVersionError) as refused:
        await db.audit_log()
    await db.close()
    message = str(refused.value)
    assert "\n" not in message
    assert "at schema revision a1b2c3d4e5f6, which this code does not know" in message
    assert "upgrade kern" in message
    assert refused.value.found == "a1b2c3d4e5f6"

    done = kern_bot(["db", "upgrade"], target)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"kern-bot: {message}"]


async def test_first_use_by_many_processes_at_once_on_postgres(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fresh database, eight stores at once (eight connections): one creates, the others find it at head."""
    monkeypatch.delenv(migrations.AUTO_UPGRADE_ENV, raising=False)
    stores = [open_db(pg_url) for _ in range(8)]
    try:
        await asyncio.gather(*(BotStore(db).card("x") for db in stores))
    finally:
        for db in stores:
            await db.close()
    count = await in_db(
        pg_url, lambda conn: conn.execute(sa.text("SELECT count(*) FROM kern_alembic_version")).scalar()
    )
    assert count == 1
    assert await versions(pg_url) == {"kern": KERN.head, "kern-bot": BOT.head}


async def test_postgres_database_made_before_migrations(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Today's tables on PostgreSQL (made as the code before migrations made them): refused, upgraded, used."""
    monkeypatch.delenv(migrations.AUTO_UPGRADE_ENV, raising=False)

    def make_v1(conn: Connection) -> None:
        KERN.metadata.create_all(conn)
        conn.execute(sa.text("INSERT INTO kern_meta VALUES ('schema_version', '1')"))
        from bot.tables import cards, pauses, tool_decisions  # the bot's tables before migrations

        BOT.metadata.create_all(conn, tables=[cards, pauses, tool_decisions])

    await in_db(pg_url, make_v1)
    revisions = tmp_path / "revisions"
    monkeypatch.setattr(migrations, "KERN", kern_with_test_revision(revisions))
    db = open_db(pg_url)
    with pytest.raises(SchemaVersionError, match="kern-bot db upgrade"):
        await BotStore(db).card("x")
    await db.close()
    done = kern_bot(["db", "upgrade"], pg_url, revisions=revisions)
    assert done.returncode == 0, done.stderr
    head = migrations.KERN.head
    assert any(upgraded("kern", BASELINE, head, line) for line in done.stdout.splitlines())
    assert await versions(pg_url) == {"kern": migrations.KERN.head, "kern-bot": BOT.head}
    db = open_db(pg_url)
    try:
        assert await BotStore(db).card("x") is None
    finally:
        await db.close()


# ----- the revisions themselves -----------------------------------------------------------------------
@pytest.mark.parametrize("migration_set", [KERN, BOT], ids=["kern", "bot"])
def test_revisions_form_one_line_numbered_by_their_files(migration_set: MigrationSet) -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migration_set.alembic_config())
    assert script.get_heads() == [migration_set.head]
    chain = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert chain == migration_set.revisions
    assert chain[0] == BASELINE
    for previous, revision in itertools.pairwise(chain):
        assert script.get_revision(revision).down_revision == previous


@pytest.mark.parametrize("migration_set", [KERN, BOT], ids=["kern", "bot"])
async def test_revisions_from_nothing_give_exactly_the_tables_in_code(target: str, migration_set: MigrationSet) -> None:
    """What `python -m kern.db revision` relies on: the migrated schema is the tables in code, on both dialects."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    def migrate_and_compare(conn: Connection) -> tuple[str | None, list]:
        migration_set.alembic_upgrade(conn)
        ours = migration_set.metadata.tables
        context = MigrationContext.configure(
            conn, opts={"include_name": lambda name, type_, _parent: type_ != "table" or name in ours}
        )
        return migration_set.current(conn), compare_metadata(context, migration_set.metadata)

    assert await in_db(target, migrate_and_compare) == (migration_set.head, [])


def test_kern_alone_upgrades_its_own_tables_and_never_imports_the_bot(v1_db: Path) -> None:
    """`python -m kern.db upgrade` touches kern's tables only; kern's migration code imports nothing of bot."""
    probe = (
        "import sys, kern.db.__main__, kern.db.migrations, kern.db.sqlite, kern.db.postgres; "
        "print(sorted(m for m in sys.modules if m == 'bot' or m.startswith('bot.')))"
    )
    imported = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert imported.stdout.strip() == "[]", imported.stderr
    done = subprocess.run(
        [sys.executable, "-m", "kern.db", "upgrade", str(v1_db)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"kern: tables made before migrations recognised as revision {BASELINE}"
    assert asyncio.run(versions(str(v1_db))) == {"kern": KERN.head, "kern-bot": None}


async def test_grants_made_before_they_named_their_step_get_it_from_their_audit_line(target: str) -> None:
    """Migration 0007 (issue 24, item 4): a stored grant is given the step of its `grant` audit line; one
    without that line keeps no step (and so allows nothing: `bot.grants`)."""
    from bot.tables import grants
    from kern.db.schema import audit

    def before_and_after(conn: Connection) -> list[tuple[str, str | None]]:
        KERN.alembic_upgrade(conn)
        BOT.alembic_upgrade(conn, "0006")
        old = sa.table(grants.name, *(sa.column(c.name) for c in grants.c if c.name != "step_name"))
        for grant_id in ("g-audited", "g-lost"):
            row = {"id": grant_id, "scope": "workflow", "workflow": "w", "tool_name": "deploy", "granted_by": "U1"}
            conn.execute(old.insert().values(**row, granted_at=1.0, expires_at=4e9, team_id=""))
        line = {"run_id": "r", "workflow_name": "w", "step_name": "plan", "decision": "grant", "at": 1.0}
        conn.execute(audit.insert().values(**line, data={"id": "g-audited", "scope": "workflow"}))
        conn.execute(
            audit.insert().values(**{**line, "step_name": "other", "decision": "vote_approve"}, data={"id": "g-lost"})
        )
        BOT.alembic_upgrade(conn)
        return [tuple(r) for r in conn.execute(sa.select(grants.c.id, grants.c.step_name).order_by(grants.c.id))]

    assert await in_db(target, before_and_after) == [("g-audited", "plan"), ("g-lost", None)]
