"""Packaging stays honest: every dependency pyproject.toml declares is imported, every import is declared,
and both packages ship their `py.typed` marker.

A dependency counts as used when kern/ or bot/ import it, or name it as an SQLAlchemy driver in a database
URL (`sqlite+aiosqlite://`, `postgresql+asyncpg://`: SQLAlchemy imports those for us). Which import names a
distribution provides is read from the installed distributions' metadata.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = {"kern", "bot"}
_DRIVER = re.compile(r"\b[a-z][a-z0-9]*\+([a-z_][a-z0-9_]*)://")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalize(dist: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", dist).lower()


def requirement_names(requirements: Iterable[str]) -> set[str]:
    """`"sqlalchemy[asyncio]>=2.0"` -> `"sqlalchemy"`, for each requirement."""
    names = set()
    for req in requirements:
        match = _NAME.match(req)
        assert match is not None, f"unreadable requirement {req!r}"
        names.add(normalize(match.group(1)))
    return names


def used_modules(roots: Iterable[Path], local: set[str], *, drivers: bool = True) -> set[str]:
    """Top-level third-party modules the Python files under `roots` import (absolute imports, not the
    standard library, not `local`), plus (with `drivers`) the SQLAlchemy drivers their database URLs name
    in code (a docstring mentioning a URL form someone may pass uses no driver)."""
    found: set[str] = set()
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            prose = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    found.update(alias.name.partition(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.partition(".")[0])
                elif drivers and isinstance(node, ast.Constant) and isinstance(node.value, str):
                    if id(node) not in prose:
                        found.update(_DRIVER.findall(node.value))
    return {m for m in found if m not in sys.stdlib_module_names and m not in local}


def provided_by() -> dict[str, set[str]]:
    """Distribution (normalized) -> the top-level import names it installs."""
    out: dict[str, set[str]] = {}
    for module, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            out.setdefault(normalize(dist), set()).add(module)
    return out


def audit(declared: set[str], used: set[str], provides: dict[str, set[str]]) -> tuple[set[str], set[str]]:
    """(modules used but provided by no declared distribution, declared distributions none of whose modules
    is used). A distribution not installed is taken to provide its own name (`pydantic-core` -> `pydantic_core`)."""
    modules = {dist: provides.get(dist) or {dist.replace("-", "_")} for dist in declared}
    covered = set().union(*modules.values()) if modules else set()
    undeclared = used - covered
    unused = {dist for dist, names in modules.items() if not names & used}
    return undeclared, unused


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_dependency_is_imported_and_every_import_declared() -> None:
    project = _pyproject()["project"]
    used = used_modules([ROOT / "kern", ROOT / "bot"], OURS)
    undeclared, unused = audit(requirement_names(project["dependencies"]), used, provided_by())
    assert not undeclared, f"kern/ or bot/ import these, but pyproject.toml declares no dependency: {undeclared}"
    assert not unused, f"pyproject.toml declares these, but kern/ and bot/ never import them: {unused}"


def test_the_tests_import_only_declared_packages() -> None:
    project = _pyproject()["project"]
    declared = requirement_names(project["dependencies"]) | requirement_names(project["optional-dependencies"]["dev"])
    used = used_modules([ROOT / "tests"], OURS | {"tests"}, drivers=False)  # tests rewrite URLs kern converts
    undeclared, _ = audit(declared, used, provided_by())
    assert not undeclared, (
        f"tests/ import these, but neither the dependencies nor the dev extra declare them: {undeclared}"
    )


def test_the_audit_catches_an_undeclared_and_an_unused_dependency(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text(
        "import json\nimport yaml.constructor\nfrom pkg import other\nfrom . import sibling\n"
        "from sqlalchemy import select\nURL = f'sqlite+aiosqlite:///{1}'\n"
        'def f():\n    """Also takes postgresql+psycopg:// URLs."""\n'
    )
    used = used_modules([tmp_path / "pkg"], {"pkg"})
    assert used == {"yaml", "sqlalchemy", "aiosqlite"}  # no stdlib, no own or relative imports
    provides = {"pyyaml": {"yaml", "_yaml"}, "sqlalchemy": {"sqlalchemy"}}
    declared = requirement_names(["SQLAlchemy[asyncio]>=2", "aiosqlite>=0.20", "openai>=1.50"])
    assert audit(declared, used, provides) == ({"yaml"}, {"openai"})
    assert audit((declared | {"pyyaml"}) - {"openai"}, used, provides) == (set(), set())


def test_both_packages_ship_py_typed() -> None:
    package_data = _pyproject()["tool"]["setuptools"]["package-data"]
    for package in sorted(OURS):
        assert (ROOT / package / "py.typed").is_file()
        assert "py.typed" in package_data[package], f"{package}'s py.typed is not in the package data"


def test_the_license_is_an_spdx_expression_with_its_file() -> None:
    project = _pyproject()["project"]
    assert project["license"] == "Apache-2.0"  # a string, not the deprecated {text = ...} table
    for name in project["license-files"]:
        assert (ROOT / name).is_file()
