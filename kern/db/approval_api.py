"""The reference API's approval methods on kern's stores, under its names: sync on `SqliteDb` and
`PostgresDb`, async on `AsyncSqliteDb` and `AsyncPostgresDb`, as the reference's stores have them.

Both are the one async implementation of `BaseDb` (`aget_approvals`, ...): the sync methods run it with
`kern._sync.run_sync`, the async ones are it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from kern._sync import run_sync
from kern.db.base import BaseDb

P = ParamSpec("P")
T = TypeVar("T")


def _sync(method: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        return run_sync(method(*args, **kwargs))

    call.__name__ = call.__qualname__ = method.__name__.removeprefix("a")
    call.__doc__ = f"Sync `{method.__name__}`: {method.__doc__}"
    return call


class SyncApprovals(BaseDb):
    """`get_approvals`, `get_approval`, `update_approval`, `delete_approval`, `get_pending_approval_count`
    as sync methods (see `BaseDb.aget_approvals` and the others for what each does)."""

    get_approvals = _sync(BaseDb.aget_approvals)
    get_approval = _sync(BaseDb.aget_approval)
    update_approval = _sync(BaseDb.aupdate_approval)
    delete_approval = _sync(BaseDb.adelete_approval)
    get_pending_approval_count = _sync(BaseDb.aget_pending_approval_count)


class AsyncApprovals(BaseDb):
    """The same methods, async."""

    get_approvals = BaseDb.aget_approvals
    get_approval = BaseDb.aget_approval
    update_approval = BaseDb.aupdate_approval
    delete_approval = BaseDb.adelete_approval
    get_pending_approval_count = BaseDb.aget_pending_approval_count
