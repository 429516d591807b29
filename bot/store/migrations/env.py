"""Alembic's entry point for kern-bot's revisions: migrates the connection kern passes (see kern.db.migrations)."""

from kern.db.migrations import run_env

run_env()
