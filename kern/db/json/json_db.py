"""`JsonDb`: importable under the reference API's name; constructing it says what to use instead."""

from __future__ import annotations

from pathlib import Path


class JsonDb:
    """The reference API's store of JSON files in a folder. kern has none: continuing a paused run
    exactly once, from any process, needs the store's transactions (a run is claimed by a compare-and-set
    on its version, its journal written with it), which a folder of JSON files cannot give.

    Constructing one raises `NotImplementedError` naming the stores to use: `SqliteDb(db_file=...)` (one
    file, which may sit in the `db_path` folder) or `InMemoryDb()`.
    """

    def __init__(
        self,
        db_path: str | Path | None = None,
        session_table: str | None = None,
        culture_table: str | None = None,
        memory_table: str | None = None,
        metrics_table: str | None = None,
        eval_table: str | None = None,
        knowledge_table: str | None = None,
        traces_table: str | None = None,
        spans_table: str | None = None,
        versions_table: str | None = None,
        components_table: str | None = None,
        component_configs_table: str | None = None,
        component_links_table: str | None = None,
        learnings_table: str | None = None,
        schedules_table: str | None = None,
        schedule_runs_table: str | None = None,
        approvals_table: str | None = None,
        auth_tokens_table: str | None = None,
        service_accounts_table: str | None = None,
        mcp_oauth_clients_table: str | None = None,
        mcp_oauth_transactions_table: str | None = None,
        mcp_oauth_codes_table: str | None = None,
        mcp_oauth_refresh_tokens_table: str | None = None,
        mcp_oauth_keys_table: str | None = None,
        id: str | None = None,
    ) -> None:
        where = Path(db_path or "tmp") / "kern.db"
        raise NotImplementedError(
            "kern has no JSON-file store (JsonDb): pausing and continuing a run exactly once needs a "
            f"transactional store. Use SqliteDb(db_file={str(where)!r}) from kern.db.sqlite, or InMemoryDb() "
            "from kern.db.in_memory for a store that lives as long as the process."
        )


__all__ = ["JsonDb"]
