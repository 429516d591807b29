"""The reference API's store constructor arguments that every kern store takes alike.

`id` names the store (a UUID derived from where it keeps its data unless given, so two store objects on
the same database, in any process, have the same id). `db_engine` is an existing SQLAlchemy engine, sync
or async: kern takes its URL and opens connections of its own (see `engine_url`). The `*_table` names are
kept on the store (`db.table_names`); kern's tables are its own, versioned by its migrations, so they are
not renamed (docs/differences.md).

Each store lists the table arguments in its signature (no catch-all `**kwargs`: an unknown one stays a
`TypeError`) and hands them here with `table_arguments(locals())`; `TABLE_ARGUMENTS` is the one list,
and tests check every store's signature against it.
"""

from __future__ import annotations

import uuid
from typing import Any

# The reference's store arguments naming a table, in its order.
TABLE_ARGUMENTS = (
    "session_table",
    "culture_table",
    "memory_table",
    "metrics_table",
    "eval_table",
    "knowledge_table",
    "traces_table",
    "spans_table",
    "versions_table",
    "components_table",
    "component_configs_table",
    "component_links_table",
    "learnings_table",
    "schedules_table",
    "schedule_runs_table",
    "approvals_table",
    "auth_tokens_table",
    "service_accounts_table",
    "mcp_oauth_clients_table",
    "mcp_oauth_transactions_table",
    "mcp_oauth_codes_table",
    "mcp_oauth_refresh_tokens_table",
    "mcp_oauth_keys_table",
)


def table_arguments(arguments: dict[str, Any]) -> dict[str, str]:
    """The `*_table` names among a constructor's `locals()` that were given."""
    return {name: arguments[name] for name in TABLE_ARGUMENTS if arguments.get(name) is not None}


def engine_url(db_engine: Any) -> str:
    """The URL (password included) of a SQLAlchemy `Engine` or `AsyncEngine`; kern opens its own
    connections there (an async driver's connections belong to one event loop, so kern keeps an engine
    per loop, and a sync engine's driver is not the one kern uses)."""
    url = getattr(db_engine, "url", None)
    if url is None or not hasattr(url, "render_as_string"):
        raise TypeError(f"db_engine must be a SQLAlchemy Engine or AsyncEngine, got {type(db_engine).__name__}")
    return str(url.render_as_string(hide_password=False))


def store_id(given: str | None, where: str | None) -> str:
    """`given`, else a UUID derived from `where` the store keeps its data (random if None)."""
    if given:
        return given
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kern:db:{where}") if where is not None else uuid.uuid4())
