"""kern's imports go one way: no two kern modules import each other, directly or around a circle.

The graph is read from the source by `tests/import_graph.py`. Imports under `if TYPE_CHECKING:` are left
out: they never run, they only name types for the checker. An import also points at every package above
the module it names that the interpreter runs first (`kern.workflow`, whose `__init__` imports the whole
workflow package): a module of `kern.run` importing `kern.workflow.types` would tie `kern.run` to all of
`kern.workflow`.

A circle is a strongly connected component of more than one module.
`ALLOWED` lists the ones the reference API's import paths force on us, each with why; keep it empty if at
all possible. A new circle fails the test with its modules and the imports that close it.
"""

from __future__ import annotations

import ast

from tests.import_graph import ROOT, circles, imports
from tests.import_graph import import_graph as walk

KERN = ROOT / "kern"

# Circles the reference API's public paths force (frozenset of modules -> why). Keep it empty.
ALLOWED: dict[frozenset[str], str] = {}


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {kern module it imports (or a package above it that runs first): line of the first such import}."""
    return walk(KERN, packages_above=True)


def describe(component: list[str], graph: dict[str, dict[str, int]]) -> str:
    """The modules of a circle and the imports among them (`a:12 -> b`)."""
    members = set(component)
    lines = [f"circle of {len(component)} modules: {', '.join(component)}"]
    for module in component:
        for target, line in sorted(graph[module].items()):
            if target in members:
                lines.append(f"    {module}:{line} -> {target}")
    return "\n".join(lines)


def test_graph_reads_the_tree() -> None:
    """The walk sees kern's modules and resolves their imports (a broken walk finds no circles at all)."""
    graph = import_graph()
    assert "kern.workflow.workflow" in graph
    assert "kern.run.base" in graph["kern.workflow"]
    assert "kern.db" in graph["kern.workflow.engine"]  # `from kern.db.base import BaseDb` runs kern/db/__init__.py
    assert "kern.workflow" not in graph["kern.workflow.engine"]  # its own package is already running
    assert all(target in graph for edges in graph.values() for target in edges)


def test_walk_counts_deferred_imports_and_skips_type_checking() -> None:
    tree = ast.parse(
        "import a\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import hidden\nelse:\n    import shown\n"
        "def f():\n    import deferred\n"
        "class C:\n    def m(self):\n        if typing.TYPE_CHECKING:\n            import hidden_too\n"
    )
    names = {alias.name for stmt in imports(tree) for alias in stmt.names}
    assert names == {"a", "TYPE_CHECKING", "shown", "deferred"}


def test_finds_a_circle() -> None:
    """The check itself: a made-up graph with a circle of three and a self-contained tail."""
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1, "d": 1}, "d": {}}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": {"b": 1}, "b": {}}) == []


def test_no_import_circles_in_kern() -> None:
    graph = import_graph()
    found = [c for c in circles(graph) if frozenset(c) not in ALLOWED]
    assert not found, "kern modules import each other in a circle:\n" + "\n".join(describe(c, graph) for c in found)


def test_allowed_circles_still_exist() -> None:
    """An allowed circle that was broken leaves the list, so the list never hides a new one."""
    present = {frozenset(c) for c in circles(import_graph())}
    assert set(ALLOWED) <= present, f"no longer circles, remove from ALLOWED: {set(ALLOWED) - present}"
