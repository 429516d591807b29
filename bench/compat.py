"""Measure how much code written for the reference API runs on kern (issue 26): `python bench/compat.py MIRROR`.

MIRROR is the reference's repository: a bare git mirror (read at HEAD) or a checkout (read from its files).
The runner copies, into a temporary folder and never into this repository, the reference's human-in-the-loop
tests (TEST_FILES, with the conftest.py files they need) and its human-in-the-loop cookbook folders
(COOKBOOK_DIRS), renaming `agno` to `kern` (`Agno`, `AGNO` too) in their text. Then it

- runs the tests with pytest against this checkout (`bench/compat_plugin.py` records each test's outcome and
  stops a test after --test-timeout seconds), and classifies each test as public or private-helper: a test
  is private when its body (or a helper or fixture of its file that it uses) touches an underscore name of
  kern (an attribute `obj._x`, an imported `_x`, a patch target "kern.x._y");
- runs each cookbook example as `python example.py` in its (copied) folder, answering its prompts with
  `bench/compat_answers.py` (the EXAMPLE_ANSWERS table below first); an example runs when it exits 0 within
  --example-timeout seconds. AgentOS examples serve an app forever from `__main__`: one with a `--demo`
  client runs when its app, served on a free port (`AGENT_OS_PORT`, the client's `localhost:7777` pointed
  there), answers that client and the client exits 0 (mode "demo"); one without, when the module imports
  and builds its `app` (mode "import");
- answers every model call from a local OpenAI-compatible server (`bot.scripted_model.ScriptedModel`) with
  `generic_reply`: call an offered tool with arguments built from its schema, then report the tool results.

It prints a table (per test file, per cookbook folder, totals, each failure's first error line) and with
`--json PATH` writes the same as JSON. It measures and does not gate: the exit status is 0 whenever the runner
itself worked, whatever the tests did.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
for _path in (BENCH, ROOT):  # this checkout's kern and bot, and the runner's plugin, whatever is installed
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from compat_plugin import first_error_line  # noqa: E402

from bot.scripted_model import Reply, ScriptedModel, tool_results, user_text  # noqa: E402

TEST_FILES = re.compile(
    r"unit/workflow/test_hitl|unit/workflow/test_executor_hitl|unit/run/test_requirement"
    r"|unit/team/test_tools_awaiting_external_execution|unit/team/test_continue_run_requirements"
    r"|unit/team/test_run_requirement_fixes|unit/models/openai/test_mixed_external_tools"
    r"|integration/workflows/test_hitl|integration/workflows/test_sequential_hitl"
    r"|integration/workflows/test_executor_hitl"
    r"|^libs/agno/tests/integration/conftest\.py$|integration/workflows/conftest\.py$"
)
TESTS_ROOT = "libs/agno/tests"
COOKBOOK_DIRS = (
    "cookbook/04_workflows/08_human_in_the_loop",
    "cookbook/02_agents/10_human_in_the_loop",
    "cookbook/02_agents/11_approvals",
    "cookbook/03_teams/20_human_in_the_loop",
    "cookbook/05_agent_os/05_human_in_the_loop",
)
# The reference's own pytest settings that change outcomes (its pyproject's [tool.pytest.ini_options]).
PYTEST_INI = "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
# The examples' PostgreSQL database (the reference's docker one); --pg-url points it at a real one.
REFERENCE_PG = re.compile(r"(postgresql(?:\+\w+)?://)ai:ai@localhost:5532/ai")

# Answers an example needs beyond compat_answers.choose's defaults: path under cookbook/ -> [regex, answer].
# An answer may be a list, given in turn (the last one repeats).
EXAMPLE_ANSWERS: dict[str, list[tuple[str, str | list[str]]]] = {
    "04_workflows/08_human_in_the_loop/condition/01_condition_user_decision.py": [(r"\(1-4\)", "4")],
    "04_workflows/08_human_in_the_loop/output_review/02_output_review_with_retry.py": [
        (r"approve", ["n", "y"]),
    ],
}


# ----- the reference --------------------------------------------------------------------------------------
class Mirror:
    """Read files of the reference: from HEAD of a bare repository, or from a checkout's files."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_dir():
            raise SystemExit(f"compat: {path} is not a directory")
        bare = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--is-bare-repository"], capture_output=True, text=True
        )
        self.bare = bare.returncode == 0 and bare.stdout.strip() == "true"
        head = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True)
        self.commit = head.stdout.strip() if head.returncode == 0 else ""

    def files(self, folder: str) -> list[str]:
        if self.bare:
            out = subprocess.run(
                ["git", "-C", str(self.path), "ls-tree", "-r", "--name-only", "HEAD", folder],
                capture_output=True,
                text=True,
                check=True,
            )
            return [line for line in out.stdout.splitlines() if line]
        base = self.path / folder
        return sorted(str(p.relative_to(self.path)) for p in base.rglob("*") if p.is_file()) if base.is_dir() else []

    def read(self, name: str) -> str:
        if self.bare:
            out = subprocess.run(
                ["git", "-C", str(self.path), "show", f"HEAD:{name}"], capture_output=True, text=True, check=True
            )
            return out.stdout
        return (self.path / name).read_text(encoding="utf-8")


def rename(text: str) -> str:
    """The reference's text as code written for kern would read: only the package renamed."""
    return text.replace("agno", "kern").replace("Agno", "Kern").replace("AGNO", "KERN")


@dataclass
class Copied:
    test_files: list[str] = field(default_factory=list)  # relative to the temp folder, e.g. tests/unit/...
    examples: list[str] = field(default_factory=list)  # relative to the temp folder, e.g. cookbook/...


def copy_reference(mirror: Mirror, dest: Path, *, only: str | None, pattern: str | None, pg_url: str | None) -> Copied:
    copied = Copied()
    wanted = re.compile(pattern, re.IGNORECASE) if pattern else None

    def put(name: str, relative: str, extra: str = "") -> None:
        target = dest / rename(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = rename(mirror.read(name))
        if extra == "pg" and pg_url:
            parts = urlsplit(pg_url)
            text = REFERENCE_PG.sub(lambda m: f"{m.group(1)}{parts.netloc}{parts.path}", text)
        target.write_text(text, encoding="utf-8")

    if only in (None, "tests"):
        everything = mirror.files(TESTS_ROOT)
        present = set(everything)
        for name in everything:
            if not TEST_FILES.search(name):
                continue
            relative = "tests/" + name[len(TESTS_ROOT) + 1 :]
            is_test = Path(name).name.startswith("test_")
            if is_test and wanted and not wanted.search(relative):
                continue
            put(name, relative)
            if is_test:
                copied.test_files.append(rename(relative))
            # the packages on the way, so same-named test files in two folders import apart
            parent = Path(name).parent
            while str(parent).startswith(TESTS_ROOT):
                init = f"{parent}/__init__.py"
                if init in present and not (dest / rename("tests/" + init[len(TESTS_ROOT) + 1 :])).exists():
                    put(init, "tests/" + init[len(TESTS_ROOT) + 1 :])
                parent = parent.parent
        (dest / "pytest.ini").write_text(PYTEST_INI, encoding="utf-8")
    if only in (None, "cookbook"):
        for folder in COOKBOOK_DIRS:
            for name in mirror.files(folder):
                if not name.endswith(".py"):
                    continue
                is_example = Path(name).name != "__init__.py"
                if is_example and wanted and not wanted.search(name):
                    continue
                put(name, name, extra="pg")
                if is_example:
                    copied.examples.append(rename(name))
    copied.test_files.sort()
    copied.examples.sort()
    return copied


# ----- the scripted model ---------------------------------------------------------------------------------
def example_value(schema: Any, defs: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A value a JSON schema accepts: strings "example", numbers 1, booleans true, enums their first value,
    arrays of one item, objects with every property."""
    if not isinstance(schema, dict) or depth > 8:
        return "example"
    defs = defs if defs is not None else {}
    defs = {**defs, **schema.get("$defs", {}), **schema.get("definitions", {})}
    if "$ref" in schema:
        return example_value(defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {}), defs, depth + 1)
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(key, []) if not (isinstance(o, dict) and o.get("type") == "null")]
        if options:
            return example_value(options[0], defs, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object" or (kind is None and "properties" in schema):
        return {name: example_value(sub, defs, depth + 1) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [example_value(schema.get("items", {}), defs, depth + 1)]
    if kind == "integer":
        return 1
    if kind == "number":
        return 1
    if kind == "boolean":
        return True
    return "example"


def _tools(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, parameters schema) of each function tool a request offers (Chat or Responses shape)."""
    offered = []
    for tool in body.get("tools") or []:
        spec = tool.get("function", tool) if isinstance(tool, dict) else {}
        if spec.get("name"):
            offered.append((str(spec["name"]), spec.get("parameters") or {}))
    return offered


def _answered_since_user(body: dict[str, Any]) -> list[str]:
    """The tool results that follow the latest user turn."""
    items = body.get("messages") or body.get("input") or []
    if isinstance(items, str):
        return []
    last_user = max((i for i, m in enumerate(items) if isinstance(m, dict) and m.get("role") == "user"), default=-1)
    return tool_results({"messages": items[last_user + 1 :]})


def _output_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    chat = body.get("response_format")
    if isinstance(chat, dict) and chat.get("type") == "json_schema":
        return dict(chat.get("json_schema", {}).get("schema") or {})
    fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        return dict(fmt.get("schema") or {})
    return None


# Arguments the examples' tools act on for real, by parameter name: a shell command the examples run
# (they allow `ls`).
ARGUMENT_VALUES: dict[str, str] = {"command": "ls"}


def _names(tool: str, text: str) -> bool:
    """Whether `text` names the tool: `send_email`, or `send email` as a person writes it."""
    return any(re.search(rf"\b{re.escape(form)}\b", text) for form in {tool, tool.replace("_", " ")})


def generic_reply(body: dict[str, Any]) -> Reply:
    """The scripted model's answer to a request no test scripted: call a tool when tools are offered and the
    latest user turn has no tool result yet (the tool the user's message names, else the first one), with
    arguments built from its schema (ARGUMENT_VALUES by name where they fit); once results are there, a
    text that includes them; with no tools, a short text echoing the request (a JSON object when the
    request asks for structured output)."""
    offered = _tools(body)
    results = _answered_since_user(body)
    asked = user_text(body)
    if offered and not results:
        named = [t for t in offered if _names(t[0], asked)]
        name, parameters = (named or offered)[0]
        arguments = example_value(parameters) if parameters else {}
        if not isinstance(arguments, dict):
            arguments = {}
        for key, value in ARGUMENT_VALUES.items():  # a harmless real value where "example" would not do
            if isinstance(arguments.get(key), str):
                arguments[key] = value
        return Reply(calls=[(name, arguments)])
    schema = _output_schema(body)
    if schema is not None:
        return Reply(text=json.dumps(example_value(schema)))
    if results:
        return Reply(text="Done (scripted model). Tool results: " + "; ".join(results))
    return Reply(text=f"Scripted reply to: {asked[:200]}" if asked else "Scripted reply.")


# ----- tests: running -------------------------------------------------------------------------------------
@dataclass
class TestResult:
    nodeid: str
    outcome: str  # passed | failed | error | skipped | not run
    kind: str = "public"  # public | private
    error: str = ""
    private_reasons: list[str] = field(default_factory=list)


@dataclass
class FileResult:
    file: str
    collected: bool
    collection_error: str = ""
    tests: list[TestResult] = field(default_factory=list)
    static: bool = False  # tests enumerated from the source (the file did not collect)

    def count(self, outcome: str, kind: str | None = None) -> int:
        return sum(1 for t in self.tests if t.outcome == outcome and (kind is None or t.kind == kind))

    def total(self, kind: str | None = None) -> int:
        return sum(1 for t in self.tests if kind is None or t.kind == kind)


def run_tests(
    work: Path,
    files: list[str],
    env: dict[str, str],
    *,
    python: str,
    test_timeout: int,
    run_timeout: int,
    workers: int,
) -> list[FileResult]:
    """One pytest process per file: a conftest that fails to import stops only the files below it, and
    each file's collection is its own."""
    env = {
        **env,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(work / "_runner")]),
        "COMPAT_TEST_TIMEOUT": str(test_timeout),
    }

    def one(file: str) -> FileResult:
        stem = re.sub(r"[^\w.-]", "_", file)
        results_path = work / "_runner" / f"{stem}.jsonl"
        log_path = work / "_runner" / f"{stem}.log"
        command = [
            python, "-m", "pytest", "-p", "compat_plugin", "-p", "no:cacheprovider", "-q", "--tb=short",
            "--continue-on-collection-errors", "--rootdir", str(work), "-c", str(work / "pytest.ini"), file,
        ]  # fmt: skip
        with log_path.open("w", encoding="utf-8") as log:
            try:
                subprocess.run(
                    command,
                    cwd=work,
                    env={**env, "COMPAT_RESULTS": str(results_path)},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=run_timeout,
                )
                killed = ""
            except subprocess.TimeoutExpired:
                killed = f"the runner stopped pytest after {run_timeout} s"
        lines = results_path.read_text().splitlines() if results_path.exists() else []
        records = [json.loads(line) for line in lines]
        if not any(r["kind"] == "collected" for r in records) and not killed:
            # pytest stopped before collecting (a conftest that does not import): its log says why
            records.append({"kind": "collect", "nodeid": file, "error": first_error_line(log_path.read_text())})
        return outcomes(work, [file], records, killed)[0]

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, files))


def outcomes(work: Path, files: list[str], records: list[dict[str, Any]], killed: str = "") -> list[FileResult]:
    """Per-file results from the plugin's records: each test's outcome from its phases."""
    collect_errors = [(r["nodeid"], r["error"]) for r in records if r["kind"] == "collect"]
    collected = [n for r in records if r["kind"] == "collected" for n in r["nodeids"]]
    phases: dict[str, dict[str, dict[str, Any]]] = {}
    for r in records:
        if r["kind"] == "phase":
            phases.setdefault(r["nodeid"], {})[r["when"]] = r
    results = []
    for file in files:
        error = next(
            (e for node, e in collect_errors if node == file or (node and file.startswith(node.rstrip("/") + "/"))),
            "",
        )
        if not error and not killed and not collected:
            error = "pytest collected nothing (see _runner/pytest.log)"
        mine = [n for n in collected if n.split("::", 1)[0] == file]
        result = FileResult(file=file, collected=bool(mine) or not error, collection_error=error)
        if not mine and error:
            result.collected = False
            result.static = True
            for name in static_tests(work / file):
                result.tests.append(TestResult(nodeid=f"{file}::{name}", outcome="error", error=error))
        for nodeid in mine:
            seen = phases.get(nodeid, {})
            setup, call, teardown = seen.get("setup"), seen.get("call"), seen.get("teardown")
            if setup is None:
                outcome, why = "not run", killed or "no outcome recorded"
            elif setup["outcome"] == "failed":
                outcome, why = "error", setup["error"]
            elif setup["outcome"] == "skipped":
                outcome, why = "skipped", setup["error"]
            elif call is not None and call["outcome"] != "passed":
                outcome, why = call["outcome"], call["error"]
            elif teardown is not None and teardown["outcome"] == "failed":
                outcome, why = "error", teardown["error"]
            elif call is None:
                outcome, why = "not run", killed or "no outcome recorded"
            else:
                outcome, why = "passed", ""
            result.tests.append(TestResult(nodeid=nodeid, outcome=outcome, error=why))
        classify_file(work / file, result.tests)
        results.append(result)
    return results


# ----- tests: public or private-helper --------------------------------------------------------------------
_SKIP_BASES = {"sys", "os", "asyncio", "threading", "inspect", "json", "time", "collections"}
# Public in name but the model's internal message formatting (the brief counts these tests apart too).
MODEL_INTERNALS = {"format_function_call_results"}
_NOT_KERN_ATTRS = {"_asdict", "_replace", "_fields", "_getframe", "_mock_children", "_mock_name", "_mock_parent"}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__")) and name != "_"


def _decorated_fixture(node: ast.AST) -> bool:
    decorators = getattr(node, "decorator_list", [])
    return any("fixture" in ast.unparse(d) for d in decorators)


class _Module:
    """A test file's parts the classifier follows: kern underscore imports, helpers, fixtures, classes."""

    def __init__(self, tree: ast.Module) -> None:
        self.private_imports: set[str] = set()
        self.functions: dict[str, ast.AST] = {}
        self.fixtures: dict[str, ast.AST] = {}
        self.classes: dict[str, ast.ClassDef] = {}
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kern"):
                self.private_imports |= {a.asname or a.name for a in node.names if _is_private(a.name)}
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                (self.fixtures if _decorated_fixture(node) else self.functions)[node.name] = node
            elif isinstance(node, ast.ClassDef):
                self.classes[node.name] = node
                if not node.name.startswith("Test"):
                    self.functions[node.name] = node

    def reasons(self, root: ast.AST, owner: ast.ClassDef | None) -> list[str]:
        """Why the test `root` is a private-helper test (empty: public), following the module's helpers,
        helper classes and fixtures (its own class's included) that it uses."""
        found: list[str] = []
        seen: set[int] = set()
        pending: list[ast.AST] = [root]
        local_fixtures = dict(self.fixtures)
        local_functions = dict(self.functions)
        if owner is not None:
            for member in owner.body:
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                    (local_fixtures if _decorated_fixture(member) else local_functions)[member.name] = member
        while pending:
            node = pending.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for arg in node.args.args + node.args.kwonlyargs:
                    if arg.arg in local_fixtures:
                        pending.append(local_fixtures[arg.arg])
                body: Iterable[ast.AST] = node.body
            elif isinstance(node, ast.ClassDef):
                body = node.body
            else:
                body = [node]
            for part in body:
                for sub in ast.walk(part):
                    found.extend(self._direct(sub))
                    if isinstance(sub, ast.Name) and sub.id in local_functions:
                        pending.append(local_functions[sub.id])
                    if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id == "self":
                        if sub.attr in local_functions:
                            pending.append(local_functions[sub.attr])
        return sorted(set(found))

    def _direct(self, node: ast.AST) -> list[str]:
        if isinstance(node, ast.Attribute) and _is_private(node.attr) and node.attr not in _NOT_KERN_ATTRS:
            if not (isinstance(node.value, ast.Name) and node.value.id in _SKIP_BASES | {"self", "cls"}):
                return [f"attribute .{node.attr}"]
        if isinstance(node, ast.Attribute) and node.attr in MODEL_INTERNALS:
            return [f"model-internal message formatting .{node.attr}"]
        if isinstance(node, ast.Name) and node.id in self.private_imports:
            return [f"imports {node.id} from kern"]
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kern"):
            return [f"imports {a.name} from kern" for a in node.names if _is_private(a.name)]
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.fullmatch(r"kern(\.\w+)*\.(_[A-Za-z]\w*)(\.\w+)*", node.value) and any(
                _is_private(p) for p in node.value.split(".")
            ):
                return [f"patches {node.value}"]
        if isinstance(node, ast.Call) and len(node.args) >= 2:
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            second = node.args[1]
            if (
                func in {"object", "setattr", "getattr", "hasattr", "delattr"}
                and isinstance(second, ast.Constant)
                and isinstance(second.value, str)
                and _is_private(second.value)
            ):
                return [f"{func}(..., {second.value!r})"]
        return []


def _find_test(module: ast.Module, parts: list[str]) -> tuple[ast.AST | None, ast.ClassDef | None]:
    scope: list[ast.stmt] = module.body
    owner: ast.ClassDef | None = None
    for index, part in enumerate(parts):
        node = next((n for n in scope if getattr(n, "name", None) == part), None)
        if node is None:
            return None, owner
        if index == len(parts) - 1:
            return node, owner
        if not isinstance(node, ast.ClassDef):
            return None, owner
        owner, scope = node, node.body
    return None, owner


def classify_file(path: Path, tests: list[TestResult]) -> None:
    """Mark each test public or private from its source (see `_Module.reasons`)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return
    module = _Module(tree)
    for test in tests:
        parts = re.sub(r"\[.*\]$", "", test.nodeid.split("::", 1)[1] if "::" in test.nodeid else "").split("::")
        node, owner = _find_test(tree, parts)
        if node is None:
            continue
        test.private_reasons = module.reasons(node, owner)
        test.kind = "private" if test.private_reasons else "public"


def static_tests(path: Path) -> list[str]:
    """The test ids of a file pytest could not collect, from its source (parametrize lists expanded)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return []

    def expand(node: ast.FunctionDef | ast.AsyncFunctionDef, prefix: str) -> Iterator[str]:
        count = 1
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Call) and ast.unparse(decorator.func).endswith("parametrize"):
                values = decorator.args[1] if len(decorator.args) > 1 else None
                if isinstance(values, ast.List | ast.Tuple):
                    count *= max(1, len(values.elts))
        for index in range(count):
            yield f"{prefix}{node.name}" + (f"[{index}]" if count > 1 else "")

    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            names.extend(expand(node, ""))
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for sub in node.body:
                if isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef) and sub.name.startswith("test"):
                    names.extend(expand(sub, f"{node.name}::"))
    return names


# ----- cookbook ---------------------------------------------------------------------------------------------
@dataclass
class ExampleResult:
    path: str
    ran: bool
    mode: str  # run | demo (AgentOS app served, its --demo client run) | import (app built, not served)
    seconds: float
    error: str = ""
    returncode: int | None = None


_TRACEBACK_LAST = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning|Timeout|Failed)\b.*")


def example_error(stderr: str, stdout: str) -> str:
    """The exception line a failed example ended with (else its last stderr or stdout line)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if _TRACEBACK_LAST.match(line):
            return line
    if lines:
        return lines[-1]
    out = [line.strip() for line in stdout.splitlines() if line.strip()]
    return out[-1] if out else ""


def serves_app(source: str) -> bool:
    return bool(re.search(r"\.serve\(", source))


def has_demo_client(source: str) -> bool:
    return serves_app(source) and "--demo" in source and "localhost:7777" in source


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, server: subprocess.Popen[str], deadline: float) -> bool:
    while time.monotonic() < deadline and server.poll() is None:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


def run_demo(
    work: Path, example: str, env: dict[str, str], *, python: str, timeout: int, log_name: str
) -> ExampleResult:
    """Serve an AgentOS example's app on a free port and run its `--demo` client against it."""
    path = work / example
    port = _free_port()
    path.write_text(path.read_text(encoding="utf-8").replace("localhost:7777", f"localhost:{port}"), "utf-8")
    logs = work / "_runner" / "examples"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    deadline = started + timeout
    server_log = (logs / f"{log_name}.server.log").open("w", encoding="utf-8")
    server = subprocess.Popen(
        [python, path.name],
        cwd=path.parent,
        env={**env, "AGENT_OS_PORT": str(port), "AGENT_OS_HOST": "127.0.0.1"},
        stdout=server_log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        if not _wait_for_port(port, server, deadline):
            server_log.flush()
            text = (logs / f"{log_name}.server.log").read_text(encoding="utf-8")
            why = example_error(text, "") or "the app never listened"
            return ExampleResult(example, False, "demo", round(time.monotonic() - started, 2), f"server: {why}")
        command = [python, path.name, "--demo"]
        try:
            done = subprocess.run(
                command, cwd=path.parent, env=env, capture_output=True, text=True, timeout=deadline - time.monotonic()
            )
        except subprocess.TimeoutExpired:
            return ExampleResult(example, False, "demo", timeout, f"Timeout after {timeout} s (demo client)")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        server_log.close()
    (logs / f"{log_name}.log").write_text(
        f"$ {' '.join(command)}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}", encoding="utf-8"
    )
    ran = done.returncode == 0
    error = "" if ran else example_error(done.stderr, done.stdout)
    return ExampleResult(example, ran, "demo", round(time.monotonic() - started, 2), error, done.returncode)


def run_example(
    work: Path, example: str, env: dict[str, str], *, python: str, timeout: int, home: Path
) -> ExampleResult:
    path = work / example
    relative = example[len("cookbook/") :]
    source = path.read_text(encoding="utf-8")
    imported = serves_app(source)
    if has_demo_client(source):
        env = {
            **env,
            "HOME": str(home),
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(work), str(work / "_answers")]),
            "COMPAT_ANSWERS": "[]",
        }
        log_name = re.sub(r"[^\w.-]", "_", relative)
        return run_demo(work, example, env, python=python, timeout=timeout, log_name=log_name)
    if imported:
        command = [
            python,
            "-c",
            "import runpy, sys; sys.argv = [sys.argv[1]]; ns = runpy.run_path(sys.argv[0], run_name='compat_import');"
            " assert ns.get('app') is not None, 'the module built no app'",
            path.name,
        ]
    else:
        command = [python, path.name]
    env = {
        **env,
        "HOME": str(home),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(work), str(work / "_answers")]),
        "COMPAT_ANSWERS": json.dumps([list(rule) for rule in EXAMPLE_ANSWERS.get(relative, [])]),
    }
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, cwd=path.parent, env=env, capture_output=True, text=True, timeout=timeout, input="y\n" * 200
        )
    except subprocess.TimeoutExpired as expired:
        out = expired.stdout.decode(errors="replace") if isinstance(expired.stdout, bytes) else expired.stdout or ""
        last = [line for line in out.splitlines() if line.strip()][-1:] or [""]
        why = f"Timeout after {timeout} s (last output: {last[0][:120]})"
        return ExampleResult(example, False, "import" if imported else "run", timeout, why)
    seconds = round(time.monotonic() - started, 2)
    (work / "_runner" / "examples").mkdir(parents=True, exist_ok=True)
    log_name = re.sub(r"[^\w.-]", "_", relative)
    (work / "_runner" / "examples" / f"{log_name}.log").write_text(
        f"$ {' '.join(command)}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}", encoding="utf-8"
    )
    ran = done.returncode == 0
    return ExampleResult(
        example,
        ran,
        "import" if imported else "run",
        seconds,
        "" if ran else example_error(done.stderr, done.stdout),
        done.returncode,
    )


def run_cookbook(
    work: Path, examples: list[str], env: dict[str, str], *, python: str, timeout: int, workers: int
) -> list[ExampleResult]:
    answers = work / "_answers"
    answers.mkdir(exist_ok=True)
    shutil.copy(BENCH / "compat_answers.py", answers / "sitecustomize.py")
    by_folder: dict[str, list[str]] = {}
    for example in examples:
        by_folder.setdefault(str(Path(example).parent), []).append(example)

    def folder_run(items: list[str]) -> list[ExampleResult]:
        # one folder at a time: its examples share files such as tmp/<name>.db
        out = []
        for example in items:
            home = work / "_home" / re.sub(r"[^\w.-]", "_", example)
            home.mkdir(parents=True, exist_ok=True)
            out.append(run_example(work, example, env, python=python, timeout=timeout, home=home))
        return out

    results: list[ExampleResult] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for done in pool.map(folder_run, by_folder.values()):
            results.extend(done)
    return sorted(results, key=lambda r: r.path)


# ----- report -----------------------------------------------------------------------------------------------
def cookbook_folder(example: str) -> str:
    for folder in COOKBOOK_DIRS:
        if example.startswith(folder + "/"):
            return folder
    return str(Path(example).parent)


def normalize_cause(line: str) -> str:
    """A failure line with its run-specific parts (ids, addresses, temp paths, this checkout's path) masked."""
    line = line.replace(str(ROOT) + "/", "")
    line = re.sub(r"0x[0-9a-f]+", "0x…", line)
    line = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", line)
    line = re.sub(r"/tmp/[^\s'\"]+", "<tmp>", line)
    return line[:200]


def summary(tests: list[FileResult], examples: list[ExampleResult], about: dict[str, Any]) -> dict[str, Any]:
    def tally(kind: str | None) -> dict[str, int]:
        return {
            outcome: sum(f.count(outcome, kind) for f in tests)
            for outcome in ("passed", "failed", "error", "skipped", "not run")
        } | {"total": sum(f.total(kind) for f in tests)}

    folders: dict[str, dict[str, int]] = {}
    for example in examples:
        row = folders.setdefault(cookbook_folder(example.path), {"ran": 0, "total": 0})
        row["total"] += 1
        row["ran"] += int(example.ran)
    public, private = tally("public"), tally("private")
    causes = Counter(
        normalize_cause(t.error)
        for f in tests
        for t in f.tests
        if t.outcome in ("failed", "error", "not run") and t.error
    ) + Counter(normalize_cause(e.error) for e in examples if not e.ran and e.error)
    return {
        **about,
        "tests": {
            "files": [asdict(f) for f in tests],
            "collected_files": sum(f.collected for f in tests),
            "files_total": len(tests),
            "public": public,
            "private": private,
            "public_pass_share": round(public["passed"] / public["total"], 4) if public["total"] else None,
        },
        "cookbook": {
            "examples": [asdict(e) for e in examples],
            "folders": folders,
            "ran": sum(e.ran for e in examples),
            "total": len(examples),
            "share": round(sum(e.ran for e in examples) / len(examples), 4) if examples else None,
        },
        "causes": causes.most_common(),
    }


def render(report: dict[str, Any]) -> str:
    out: list[str] = []
    tests, cookbook = report["tests"], report["cookbook"]
    reference = report["reference_commit"][:12] or "(its files)"
    out.append(f"Reference {report['mirror']} at {reference}; kern at {report['kern_commit']}")
    if tests["files"]:
        out.append("")
        out.append("Reference tests (renamed agno -> kern)")
        header = f"{'file':<66} {'coll':>4} {'pass':>5} {'fail':>5} {'err':>5} {'skip':>5}"
        header += f"  {'public':>9}  {'private':>9}"
        out.append(header)
        out.append("-" * len(header))
        for f in tests["files"]:
            rows = f["tests"]

            def n(outcome: str, kind: str | None = None, rows: list[dict[str, Any]] = rows) -> int:
                return sum(1 for t in rows if t["outcome"] == outcome and (kind is None or t["kind"] == kind))

            pub = sum(1 for t in rows if t["kind"] == "public")
            pri = len(rows) - pub
            out.append(
                f"{f['file'][len('tests/') :]:<66} {'yes' if f['collected'] else 'NO':>4} {n('passed'):>5} "
                f"{n('failed'):>5} {n('error') + n('not run'):>5} {n('skipped'):>5}  "
                f"{n('passed', 'public'):>4}/{pub:<4}  {n('passed', 'private'):>4}/{pri:<4}"
                + ("  (static count)" if f["static"] else "")
            )
        pub, pri = tests["public"], tests["private"]
        share = tests["public_pass_share"]
        out.append("")
        out.append(
            f"Files collected: {tests['collected_files']}/{tests['files_total']}.  Public tests passed: "
            f"{pub['passed']}/{pub['total']} ({share:.1%})"
            if share is not None
            else "Public tests: none"
        )
        out.append(
            f"Private-helper tests (not in the target) passed: {pri['passed']}/{pri['total']}.  All: "
            f"{pub['passed'] + pri['passed']}/{pub['total'] + pri['total']} "
            f"(failed {pub['failed'] + pri['failed']}, error {pub['error'] + pri['error']}, "
            f"skipped {pub['skipped'] + pri['skipped']}, not run {pub['not run'] + pri['not run']})"
        )
        errors = [f for f in tests["files"] if f["collection_error"]]
        if errors:
            out.append("")
            out.append("Collection errors")
            for f in errors:
                out.append(f"  {f['file']}: {f['collection_error']}")
    if cookbook["examples"]:
        out.append("")
        out.append("Cookbook examples (exit 0 within the timeout; AgentOS apps: served and their --demo client run)")
        for folder, row in cookbook["folders"].items():
            out.append(f"  {folder:<58} {row['ran']:>3}/{row['total']:<3}")
        out.append(f"  {'total':<58} {cookbook['ran']:>3}/{cookbook['total']:<3} ({cookbook['share']:.1%})")
    failing = [
        (t["nodeid"], t["outcome"], t["error"], t["kind"])
        for f in tests["files"]
        for t in f["tests"]
        if t["outcome"] in ("failed", "error", "not run") and not f["static"]
    ]
    if failing:
        out.append("")
        out.append("Failing tests (outcome, kind: first error line)")
        for nodeid, outcome, error, kind in failing:
            out.append(f"  {nodeid}  [{outcome}, {kind}]: {error}")
    private = [
        (t["nodeid"], t["private_reasons"]) for f in tests["files"] for t in f["tests"] if t["kind"] == "private"
    ]
    if private:
        out.append("")
        out.append("Private-helper tests (why)")
        for nodeid, reasons in private:
            out.append(f"  {nodeid}: {', '.join(reasons)}")
    bad = [e for e in cookbook["examples"] if not e["ran"]]
    if bad:
        out.append("")
        out.append("Examples that did not run to the end (first error line)")
        for e in bad:
            out.append(f"  {e['path'][len('cookbook/') :]} [{e['mode']}]: {e['error']}")
    return "\n".join(out)


def render_causes(report: dict[str, Any], top: int = 30) -> str:
    lines = [f"Most common first error lines (tests and examples), top {top}:"]
    for cause, count in report["causes"][:top]:
        lines.append(f"{count:>5}  {cause}")
    return "\n".join(lines)


# ----- main -------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run the reference's HITL tests and cookbook examples (agno renamed kern) against this "
        "checkout and report what runs. Exit 0 whenever the runner worked.",
    )
    parser.add_argument(
        "mirror", metavar="MIRROR", type=Path, help="the reference repository: a bare git mirror or a checkout"
    )
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the report as JSON here")
    parser.add_argument("--causes", metavar="PATH", type=Path, help="also write the top failure causes (grouped) here")
    parser.add_argument("--only", choices=("tests", "cookbook"), help="run only the tests or only the cookbook")
    parser.add_argument("-k", dest="pattern", help="only test files / examples whose path matches this regex")
    parser.add_argument("--test-timeout", type=int, default=30, help="seconds per test (default 30)")
    parser.add_argument("--file-timeout", dest="tests_timeout", type=int, default=900, help="seconds per test file")
    parser.add_argument("--example-timeout", type=int, default=60, help="seconds per example (default 60)")
    parser.add_argument("--workers", type=int, default=2, help="test files / cookbook folders run at once (default 2)")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("COMPAT_PG_URL"),
        help="PostgreSQL for the examples' PostgresDb (replaces the reference's ai:ai@localhost:5532/ai; "
        "default $COMPAT_PG_URL)",
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter for pytest and the examples")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    args = parser.parse_args(argv)

    mirror = Mirror(args.mirror.resolve())
    kern_commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "kern"], capture_output=True, text=True)
    about = {
        "mirror": str(args.mirror),
        "reference_commit": mirror.commit,
        "kern_commit": kern_commit.stdout.strip() + (" (kern/ modified)" if dirty.stdout.strip() else ""),
    }
    work = Path(tempfile.mkdtemp(prefix="kern-compat-"))
    try:
        copied = copy_reference(mirror, work, only=args.only, pattern=args.pattern, pg_url=args.pg_url)
        (work / "_runner").mkdir(exist_ok=True)
        shutil.copy(BENCH / "compat_plugin.py", work / "_runner" / "compat_plugin.py")
        with ScriptedModel(fallback=generic_reply) as server:
            env = {
                **os.environ,
                "OPENAI_BASE_URL": server.base_url,
                "OPENAI_API_KEY": "sk-test",
                "PYTHONDONTWRITEBYTECODE": "1",
            }
            env.pop("PYTHONSTARTUP", None)
            tests = (
                run_tests(
                    work,
                    copied.test_files,
                    env,
                    python=args.python,
                    test_timeout=args.test_timeout,
                    run_timeout=args.tests_timeout,
                    workers=args.workers,
                )
                if copied.test_files
                else []
            )
            examples = (
                run_cookbook(
                    work,
                    copied.examples,
                    env,
                    python=args.python,
                    timeout=args.example_timeout,
                    workers=args.workers,
                )
                if copied.examples
                else []
            )
        report = summary(tests, examples, about)
        print(render(report))
        print()
        print(render_causes(report))
        if args.json:
            args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
        if args.causes:
            args.causes.write_text(render_causes(report) + "\n", encoding="utf-8")
        if args.keep:
            print(f"\n(temporary folder kept: {work})")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
