"""The import graph of a package, read from its source with `ast` (not by importing it), and its circles:
one walk for `tests/test_kern_imports.py` (kern) and `tests/test_layering.py` (bot/).

Every `import` and `from ... import` counts, relative ones resolved, at module level and inside functions
(a deferred import still ties two modules together; it only hides the circle from the interpreter).
Imports under `if TYPE_CHECKING:` count only when asked (`type_checking=True`: bot/'s layers treat a type
named from a higher layer as a dependency too). An import points at the most specific module it names
(`from kern.workflow import types` and `from kern.workflow.types import StepOutput` are both edges to
`kern.workflow.types`); with `packages_above=True`, also at every package above it that the interpreter
runs first, except the packages the importer itself sits in (they are already running).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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


def imports(node: ast.AST, *, type_checking: bool = False) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under `node` (module level and deferred); `if TYPE_CHECKING:` bodies only
    with `type_checking` (their `else:` branches run, so they always count)."""
    for child in ast.iter_child_nodes(node):
        if not type_checking and isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _imports_of(other, type_checking)
            continue
        yield from _imports_of(child, type_checking)


def _imports_of(node: ast.AST, type_checking: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    else:
        yield from imports(node, type_checking=type_checking)


def import_graph(
    package: Path, *, type_checking: bool = False, packages_above: bool = False
) -> dict[str, dict[str, int]]:
    """module -> {module of the same package it imports: line of the first such import}."""
    files = {module_name(p): p for p in sorted(package.rglob("*.py"))}
    top = package.name
    graph: dict[str, dict[str, int]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: dict[str, int] = {}
        for stmt in imports(tree, type_checking=type_checking):
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
                if target.split(".")[0] != top:
                    continue
                # `import kern.a.b` names `kern.a.b`; an unknown tail (an attribute) falls back to the module.
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.setdefault(target, stmt.lineno)
                if not packages_above:
                    continue
                # The packages above the target run first: `kern.workflow.types` runs `kern/workflow/__init__.py`.
                parts = target.split(".")
                for depth in range(2, len(parts)):
                    above = ".".join(parts[:depth])
                    if above in files and not name.startswith(above + "."):
                        edges.setdefault(above, stmt.lineno)
        graph[name] = edges
    return graph


def circles(graph: dict[str, dict[str, int]] | dict[str, set[str]]) -> list[list[str]]:
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
                    work.append((child, iter(sorted(graph.get(child, ())))))
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
