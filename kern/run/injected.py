"""Calling user code with the run's values it asks for by parameter name.

A step executor, Router selector, Condition evaluator or Loop end condition may declare `session_state`
and/or `run_context` (a Router selector also `step_choices`); an agent's tool and post-hook may declare
`session_state`, `run_context`, `dependencies` and `agent` (a hook also `run_output`); those declared are
passed by keyword, from the values the caller has.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from kern._sync import call_user

INJECTABLE = frozenset(
    {"session_state", "run_context", "step_choices", "dependencies", "agent", "run_output", "user_id", "metadata"}
)


async def call_with(
    fn: Callable[..., Any], args: tuple[Any, ...], values: Mapping[str, Any] | Callable[[], Mapping[str, Any]]
) -> Any:
    """`fn(*args)` plus the entries of `values` whose names `fn` declares as parameters. `values` may be a
    callable giving them: it is called only when `fn` declares one (a step on the pause cycle's path
    usually declares none)."""
    wanted = declared(fn)
    if not wanted:
        return await call_user(fn, *args)
    given = values() if callable(values) else values
    kwargs = {name: given[name] for name in wanted if name in given}
    if kwargs:
        return await call_user(functools.partial(fn, **kwargs), *args)
    return await call_user(fn, *args)


def declared(fn: Callable[..., Any]) -> frozenset[str]:
    """The injectable names among `fn`'s parameters (by name, not `**kwargs`)."""
    try:
        return _declared(fn)
    except TypeError:  # an unhashable callable: not cached
        return _declared.__wrapped__(fn)


@functools.lru_cache(maxsize=1024)
def _declared(fn: Callable[..., Any]) -> frozenset[str]:
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin without a signature asks for nothing
        return frozenset()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return frozenset(name for name, p in parameters.items() if name in INJECTABLE and p.kind in kinds)
