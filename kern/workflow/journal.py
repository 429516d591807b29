"""Which node produced the journal's entries, and whether the workflow still has it there.

Journal entries are keyed by node path (`2`, `2/else/0`, `3/iter/4/1`, `2~1/0` for a router's retry).
When a node is first entered, the run's journal records it under `journal["__nodes__"][path]` as
`"<step_type>:<name>"`. A run paused under one definition may be continued after a deploy changed the
workflow; before anything is claimed, `check_journal` resolves every recorded path in the current
definition and refuses (`JournalMismatchError`, nothing changed) when the node there is another one or is
gone, so a journaled result or decision is never applied to a different step. The engine compares again
as it enters each node, like durable-execution engines check recorded step names on replay.

Journals written before node records existed are checked through their pauses: every requirement names
its step's path, type and name.

Steps in a sequence (the workflow's top level, a Steps, a Condition's branch, a Loop's iteration) run one
after another, and each one's result is journaled as it finishes: a node recorded at `…/3` means `…/0` to
`…/2` finished. A journal without one of those results (edited or cut off by hand) is refused too, rather
than running that step a second time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from kern.exceptions import JournalMismatchError

if TYPE_CHECKING:
    from kern.workflow.node import Node

NODES = "__nodes__"
_UNKNOWN = object()  # a path under a node kind this module cannot look into
_BUILT_IN = frozenset(("Step", "Steps", "Parallel", "Router", "Condition", "Loop"))


def _journals_its_result(node: Node) -> bool:
    """Whether the node is one of kern's primitives, which journal their result as they finish (a custom
    primitive may not)."""
    return node.step_type in _BUILT_IN and type(node).__module__.startswith("kern.workflow.")


def tag(node: Node) -> str:
    """How the journal names a node."""
    return f"{node.step_type}:{_stable(node.name)}"


def _stable(name: str) -> str:
    """A step named after the repr of a callable (`<Fetcher object at 0x7f..>`, a functools.partial) has
    another name in every process: the address is not part of what the journal compares."""
    return _ADDRESS.sub("", name) if " at 0x" in name else name


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _index(children: list[Node], segment: str) -> Node | None:
    segment = segment.split("~", 1)[0]  # a router's retry runs its routes under `<path>~<attempt>`
    if not segment.isdigit() or int(segment) >= len(children):
        return None
    return children[int(segment)]


def node_at(steps: list[Node], path: str) -> Any:
    """The node now at `path` in this definition: a Node, None if there is none, or _UNKNOWN."""
    parts = path.split("/")
    node: Any = _index(steps, parts[0])
    i = 1
    while node is not None and i < len(parts):
        kind = node.step_type
        if kind in ("Steps", "Parallel"):
            node, i = _index(node.steps, parts[i]), i + 1
        elif kind == "Router":
            node, i = _index(node.choices, parts[i]), i + 1
        elif kind == "Condition":
            branch = {"if": node.steps, "else": node.else_steps}.get(parts[i])
            node = _index(branch, parts[i + 1]) if branch is not None and i + 1 < len(parts) else None
            i += 2
        elif kind == "Loop":
            inside = parts[i] == "iter" and i + 2 < len(parts)
            node = _index(node.steps, parts[i + 2]) if inside else None
            i += 3
        elif kind == "Step":
            return None
        else:
            return _UNKNOWN
    return node


def mismatch(run_id: str | None, path: str, recorded: str, found: str | None) -> JournalMismatchError:
    now = f"now has {found}" if found else "now has no step there"
    return JournalMismatchError(
        f"Run {run_id} cannot continue with this definition of the workflow: at path {path!r} its journal "
        f"recorded {recorded}, but the workflow {now}. Continue it with the definition it ran under, or cancel it.",
        run_id=run_id,
        path=path,
        recorded=recorded,
        found=found,
    )


def _lost_result(steps: list[Node], journal: Mapping[str, Any], paths: Iterable[str]) -> tuple[str, Node, str] | None:
    """A node that must have finished before one at `paths` was entered (an earlier one in the same
    sequence) but has no journaled result: (its path, the node, the later path), or None. Each sequence is
    checked up to the furthest node entered in it, so a long journal costs one look per node."""
    furthest: dict[str, tuple[int, list[Node], str]] = {}  # sequence (its path prefix) -> index, nodes, path
    for path in paths:
        parts = path.split("/")
        children: list[Node] | None = steps
        base, sequential, i = "", True, 0
        while children is not None and i < len(parts):
            segment = parts[i].split("~", 1)[0]
            if not segment.isdigit() or int(segment) >= len(children):
                break
            index = int(segment)
            if sequential and index > furthest.get(base, (-1,))[0]:
                furthest[base] = (index, children, path)
            container: Any = children[index]  # a built-in primitive's children are looked at by its step_type
            here, i = f"{base}{parts[i]}", i + 1
            kind = container.step_type
            if kind == "Steps":
                children, base, sequential = container.steps, f"{here}/", True
            elif kind == "Condition" and i + 1 < len(parts) and parts[i] in ("if", "else"):
                children = container.steps if parts[i] == "if" else container.else_steps
                base, sequential, i = f"{here}/{parts[i]}/", True, i + 1
            elif kind == "Loop" and i + 2 < len(parts) and parts[i] == "iter":
                children, base, sequential, i = container.steps, f"{here}/iter/{parts[i + 1]}/", True, i + 2
            elif kind in ("Parallel", "Router"):  # branches run side by side, routes as chosen: no order to check
                children = container.steps if kind == "Parallel" else container.choices
                base, sequential = f"{here}/", False
            else:
                break
    for base, (index, children, later) in furthest.items():
        for earlier in range(index):
            node = children[earlier]
            if f"{base}{earlier}" not in journal and _journals_its_result(node):
                return f"{base}{earlier}", node, later
    return None


def check_journal(
    steps: list[Node], run_id: str | None, journal: Mapping[str, Any], requirements: Iterable[Mapping[str, Any]]
) -> None:
    """Raise `JournalMismatchError` unless every node the run journaled is still at its path, and every node
    that finished before one it entered has its result journaled."""
    recorded = dict(journal.get(NODES) or {})
    for req in requirements:
        path = req.get("step_path")
        if path and path not in recorded:
            recorded[path] = f"{req.get('step_type', 'Step')}:{_stable(str(req.get('step_name')))}"
    for path, expected in recorded.items():
        node = node_at(steps, path)
        if node is _UNKNOWN:
            continue  # a custom primitive: the engine still compares as it enters each node
        found = tag(node) if node is not None else None
        if found != expected:
            raise mismatch(run_id, path, expected, found)
    lost = _lost_result(steps, journal, recorded)
    if lost is not None:
        where, node, path = lost
        raise JournalMismatchError(
            f"Run {run_id} cannot continue: its journal has no result for {node.step_type.lower()} "
            f"'{node.name}' at path {where!r}, which finished before the step at {path!r} began (the journal "
            "was edited or cut off). Continuing would run it a second time; cancel the run instead.",
            run_id=run_id,
            path=where,
            recorded="no result",
            found=tag(node),
        )
