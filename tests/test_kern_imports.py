"""kern's imports go one way: no two kern modules import each other, directly or around a circle.

The graph is read from the source with `ast`, not by importing it: every `import` and `from ... import`
in `kern/**/*.py`, relative ones resolved, at module level and inside functions (a deferred import still
ties two modules together; it only hides the circle from the interpreter). Imports under
`if TYPE_CHECKING:` are left out: they never run, they only name types for the checker.

An import points at the most specific module it names (`from kern.workflow import types` and
`from kern.workflow.types import StepOutput` are both edges to `kern.workflow.types`), and also at every
package above it that the interpreter runs first (`kern.workflow`, whose `__init__` imports the whole
workflow package): a module of `kern.run` importing `kern.workflow.types` would tie `kern.run` to all of
`kern.workflow`. Packages the importer itself sits in are not counted (they are already running).

A circle is a strongly connected component of more than one module.
`ALLOWED` lists the ones the reference API's import paths force on us, each with why; keep it empty if at
all possible. A new circle fails the test with its modules and the imports that close it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KERN = ROOT / "kern"

# Circles the reference API's public paths force (frozenset of modules -> why). Keep it empty.
ALLOWED: dict[frozenset[str], str] = {}


def module_name(path: Path) -> str:
    """`kern/workflow/types.py` -> `kern.workflow.types`; `kern/workflow/__init__.py` -> `kern.workflow`."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    """`if TYPE_CHECKING:` or `if typing.TYPE_CHECKING:`."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under `node` (module level and deferred), skipping `if TYPE_CHECKING:`
    bodies (their `else:` branches run, so they count)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _imports_of(other)
            continue
        yield from _imports_of(child)


def _imports_of(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    else:
        yield from _imports(node)


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {kern module it imports: line of the first such import}."""
    files = {module_name(p): p for p in sorted(KERN.rglob("*.py"))}
    graph: dict[str, dict[str, int]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: dict[str, int] = {}
        for stmt in _imports(tree):
            targets: list[str] = []
            if isinstance(stmt, ast.Import):
                targets = [alias.name for alias in stmt.names]
            else:
                base = stmt.module or ""
                if stmt.level:
                    parent = name.split(".") if is_package else name.split(".")[:-1]
                    parent = parent[: len(parent) - (stmt.level - 1)]
                    base = ".".join(parent + ([base] if base else []))
                for alias in stmt.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in files else base)
            for target in targets:
                # `import kern.a.b` names `kern.a.b`; an unknown tail (an attribute) falls back to the module.
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.setdefault(target, stmt.lineno)
                # The packages above the target run first: `kern.workflow.types` runs `kern/workflow/__init__.py`.
                parts = target.split(".")
                for depth in range(2, len(parts)):
                    package = ".".join(parts[:depth])
                    if package in files and not name.startswith(package + "."):
                        edges.setdefault(package, stmt.lineno)
        graph[name] = edges
    return graph


def circles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


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
    names = {alias.name for stmt in _imports(tree) for alias in stmt.names}
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
