"""bench/compat.py, the issue-26 measure, checked piece by piece without the reference: the rename, the copy
from a bare repository and from a checkout, the public/private-helper classifier, the pytest run with its
per-test budget, the generic scripted model (through the real `openai` client), the person answering the
examples' prompts, and the command line. Only the end-to-end run needs the reference's mirror."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import openai
import pytest

from bot.scripted_model import ScriptedModel

ROOT = Path(__file__).resolve().parent.parent
MIRROR = Path(os.environ.get("COMPAT_MIRROR", "/work/.mirror/agno-agi+agno/repo"))


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_compat", ROOT / "bench" / "compat.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_compat"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


compat = _load()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# ----- rename and copy --------------------------------------------------------------------------------------
def test_rename_touches_every_spelling_of_the_package() -> None:
    source = "from agno.agent import Agent  # Agno docs, AGNO_TELEMETRY, libs/agno/agno"
    assert compat.rename(source) == "from kern.agent import Agent  # Kern docs, KERN_TELEMETRY, libs/kern/kern"
    assert compat.rename("nothing to rename") == "nothing to rename"


def _reference(root: Path) -> Path:
    """A tiny stand-in for the reference's layout (its code invented here)."""
    tests = root / "libs" / "agno" / "tests"
    for init in ("__init__.py", "unit/__init__.py", "unit/workflow/__init__.py", "integration/__init__.py"):
        write(tests / init, "")
    write(tests / "unit/workflow/test_hitl.py", "from agno.workflow import Step\n\ndef test_a():\n    assert Step\n")
    write(tests / "unit/workflow/test_other.py", "def test_not_listed():\n    pass\n")
    write(tests / "integration/conftest.py", "import agno\n")
    write(tests / "integration/agent/conftest.py", "import agno\n")  # not needed by the listed tests
    hitl = root / "cookbook" / "04_workflows" / "08_human_in_the_loop"
    write(hitl / "__init__.py", "")
    write(hitl / "README.md", "# agno\n")
    write(
        hitl / "step" / "01_confirm.py",
        'from agno.db.postgres import PostgresDb\nURL = "postgresql+psycopg://ai:ai@localhost:5532/ai"\n',
    )
    return root


def test_copy_from_a_checkout_renames_and_keeps_only_what_is_listed(tmp_path: Path) -> None:
    mirror = compat.Mirror(_reference(tmp_path / "ref"))
    assert not mirror.bare
    dest = tmp_path / "work"
    copied = compat.copy_reference(
        mirror, dest, only=None, pattern=None, pg_url="postgresql://postgres@127.0.0.1:5432/somedb"
    )
    assert copied.test_files == ["tests/unit/workflow/test_hitl.py"]
    assert copied.examples == ["cookbook/04_workflows/08_human_in_the_loop/step/01_confirm.py"]
    assert (dest / "tests/unit/workflow/test_hitl.py").read_text().startswith("from kern.workflow import Step")
    for init in ("tests/__init__.py", "tests/unit/__init__.py", "tests/unit/workflow/__init__.py"):
        assert (dest / init).exists(), init
    assert (dest / "tests/integration/conftest.py").read_text() == "import kern\n"
    assert not (dest / "tests/integration/agent/conftest.py").exists()
    assert not (dest / "tests/unit/workflow/test_other.py").exists()
    assert not (dest / "cookbook/04_workflows/08_human_in_the_loop/README.md").exists()
    example = (dest / copied.examples[0]).read_text()
    assert "from kern.db.postgres import PostgresDb" in example
    assert 'URL = "postgresql+psycopg://postgres@127.0.0.1:5432/somedb"' in example
    assert "asyncio_mode = auto" in (dest / "pytest.ini").read_text()


def test_copy_from_a_bare_mirror_reads_head_and_narrows(tmp_path: Path) -> None:
    work = _reference(tmp_path / "ref")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", str(work)], check=True)
    subprocess.run([*git, "-C", str(work), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-qm", "x"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(tmp_path / "bare.git")], check=True)
    mirror = compat.Mirror(tmp_path / "bare.git")
    assert mirror.bare and len(mirror.commit) == 40
    copied = compat.copy_reference(mirror, tmp_path / "w1", only="tests", pattern=None, pg_url=None)
    assert copied.test_files == ["tests/unit/workflow/test_hitl.py"] and copied.examples == []
    copied = compat.copy_reference(mirror, tmp_path / "w2", only=None, pattern="01_confirm", pg_url=None)
    assert copied.test_files == [] and len(copied.examples) == 1
    assert "ai:ai@localhost:5532" in (tmp_path / "w2" / copied.examples[0]).read_text()  # no --pg-url: kept


# ----- public or private-helper -----------------------------------------------------------------------------
SYNTHETIC = """
from unittest.mock import patch

import pytest

from kern.workflow import Step
from kern.team._tools import _find_member


def _helper(step):
    return step._create_requirement()


@pytest.fixture
def prepared():
    team = object()
    team._prepare = 1
    return team


def test_public():
    step = Step(name="a")
    assert step.__class__.__name__ == "Step" and step.name == "a"


def test_attribute():
    assert Step(name="a")._create_requirement()


def test_imported_name():
    assert _find_member(None) is None


def test_patch_target():
    with patch("kern.workflow.step._run_executor"):
        pass


def test_setattr_of_a_private_name(monkeypatch):
    monkeypatch.setattr(Step, "_execute", None)


def test_through_a_helper():
    assert _helper(Step(name="a"))


def test_through_a_fixture(prepared):
    assert prepared


def test_model_internal():
    object().format_function_call_results(messages=[])


class TestGrouped:
    def _make(self):
        return Step(name="b")

    def test_public_method(self):
        assert self._make().name == "b"

    @pytest.mark.parametrize("n", [1, 2, 3])
    def test_param(self, n):
        assert n
"""


def test_classifier_names_why_a_test_is_private(tmp_path: Path) -> None:
    path = write(tmp_path / "test_synthetic.py", SYNTHETIC)
    names = compat.static_tests(path)
    assert names == [
        "test_public",
        "test_attribute",
        "test_imported_name",
        "test_patch_target",
        "test_setattr_of_a_private_name",
        "test_through_a_helper",
        "test_through_a_fixture",
        "test_model_internal",
        "TestGrouped::test_public_method",
        "TestGrouped::test_param[0]",
        "TestGrouped::test_param[1]",
        "TestGrouped::test_param[2]",
    ]
    tests = [compat.TestResult(nodeid=f"test_synthetic.py::{name}", outcome="passed") for name in names]
    compat.classify_file(path, tests)
    why = {t.nodeid.split("::", 1)[1]: t.private_reasons for t in tests}
    kinds = {name: t.kind for name, t in zip(names, tests, strict=True)}
    assert kinds["test_public"] == "public"  # a dunder is not private
    assert kinds["TestGrouped::test_public_method"] == "public"  # the test's own underscore helper on self
    assert kinds["TestGrouped::test_param[1]"] == "public"
    assert why["test_attribute"] == ["attribute ._create_requirement"]
    assert why["test_imported_name"] == ["imports _find_member from kern"]
    assert why["test_patch_target"] == ["patches kern.workflow.step._run_executor"]
    assert why["test_setattr_of_a_private_name"] == ["setattr(..., '_execute')"]
    assert why["test_through_a_helper"] == ["attribute ._create_requirement"]
    assert why["test_through_a_fixture"] == ["attribute ._prepare"]
    assert why["test_model_internal"] == ["model-internal message formatting .format_function_call_results"]


# ----- running tests ----------------------------------------------------------------------------------------
def test_run_tests_records_each_outcome_and_stops_a_hung_test(tmp_path: Path) -> None:
    work = tmp_path / "work"
    write(work / "pytest.ini", compat.PYTEST_INI)
    write(
        work / "tests/test_mixed.py",
        """
        import time

        import pytest


        @pytest.fixture
        def broken():
            raise RuntimeError("fixture broke")


        def test_pass():
            pass


        def test_fail():
            raise ValueError("wrong value")


        def test_error(broken):
            pass


        def test_skip():
            pytest.skip("not here")


        def test_hangs():
            time.sleep(30)


        async def test_async():
            assert True


        def test_pydantic():
            import pydantic

            class Shape(pydantic.BaseModel):
                sides: int

            Shape(sides="many")
        """,
    )
    write(work / "tests/test_broken.py", "import kern.no_such_module\n\ndef test_x():\n    pass\n")
    write(work / "tests/sub/conftest.py", "import kern.no_such_conftest_module\n")
    write(work / "tests/sub/test_below.py", "def test_y():\n    pass\n\ndef test_z():\n    pass\n")
    (work / "_runner").mkdir()
    (work / "_runner" / "compat_plugin.py").write_text((ROOT / "bench" / "compat_plugin.py").read_text())
    files = ["tests/sub/test_below.py", "tests/test_broken.py", "tests/test_mixed.py"]
    results = compat.run_tests(
        work, files, dict(os.environ), python=sys.executable, test_timeout=2, run_timeout=120, workers=2
    )
    below, broken, mixed = results
    assert not below.collected and below.static and len(below.tests) == 2
    assert below.collection_error == "ModuleNotFoundError: No module named 'kern.no_such_conftest_module'"
    assert not broken.collected and broken.collection_error.startswith("ModuleNotFoundError")
    assert [t.outcome for t in broken.tests] == ["error"]
    assert mixed.collected
    outcome = {t.nodeid.split("::")[1]: (t.outcome, t.error) for t in mixed.tests}
    assert outcome["test_pass"] == ("passed", "")
    assert outcome["test_fail"] == ("failed", "ValueError: wrong value")
    assert outcome["test_error"] == ("error", "RuntimeError: fixture broke")
    assert outcome["test_skip"][0] == "skipped"
    assert outcome["test_hangs"][0] == "failed" and "compat runner budget" in outcome["test_hangs"][1]
    assert outcome["test_async"] == ("passed", "")
    assert "1 validation error for Shape | sides | Input should be a valid integer" in outcome["test_pydantic"][1]


# ----- the scripted model's generic script ------------------------------------------------------------------
WEATHER_TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "days": {"type": "integer"},
                    "metric": {"type": "boolean"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                    "tags": {"type": "array", "items": {"type": "number"}},
                    "where": {"$ref": "#/$defs/Place"},
                    "note": {"anyOf": [{"type": "null"}, {"type": "string"}]},
                },
                "$defs": {"Place": {"type": "object", "properties": {"lat": {"type": "number"}}}},
            },
        },
    },
]


def test_generic_script_calls_the_named_tool_then_reports_its_result() -> None:
    with ScriptedModel(fallback=compat.generic_reply) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test")
        asked = [{"role": "user", "content": "Use get_weather for Paris"}]
        first = client.chat.completions.create(model="m", messages=asked, tools=WEATHER_TOOLS)  # type: ignore[arg-type]
        calls = first.choices[0].message.tool_calls or []
        assert [c.function.name for c in calls] == ["get_weather"]  # type: ignore[union-attr]
        arguments = json.loads(calls[0].function.arguments)  # type: ignore[union-attr]
        assert arguments == {
            "city": "example",
            "days": 1,
            "metric": True,
            "unit": "celsius",
            "tags": [1],
            "where": {"lat": 1},
            "note": "example",
        }
        answered = [
            *asked,
            {"role": "assistant", "content": None, "tool_calls": [calls[0].model_dump()]},
            {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny, 21 C"},
        ]
        second = client.chat.completions.create(model="m", messages=answered, tools=WEATHER_TOOLS)  # type: ignore[arg-type]
        assert second.choices[0].message.tool_calls is None
        assert "sunny, 21 C" in (second.choices[0].message.content or "")
        # a new user turn after the results: a tool is called again, the first offered (none named)
        again = [*answered, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "and now?"}]
        third = client.chat.completions.create(model="m", messages=again, tools=WEATHER_TOOLS)  # type: ignore[arg-type]
        assert [c.function.name for c in third.choices[0].message.tool_calls or []] == ["lookup"]  # type: ignore[union-attr]
        plain = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hello there"}])
        assert plain.choices[0].message.content == "Scripted reply to: hello there"


def test_generic_script_on_the_responses_api_and_structured_output() -> None:
    with ScriptedModel(fallback=compat.generic_reply) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test")
        tools = [
            {"type": "function", "name": t["function"]["name"], "parameters": t["function"]["parameters"]}
            for t in WEATHER_TOOLS
        ]
        response = client.responses.create(model="m", input="please lookup something", tools=tools)  # type: ignore[arg-type]
        calls = [item for item in response.output if item.type == "function_call"]
        assert [(c.name, json.loads(c.arguments)) for c in calls] == [("lookup", {"q": "example"})]  # type: ignore[union-attr]
        schema = {"type": "object", "properties": {"title": {"type": "string"}, "score": {"type": "integer"}}}
        shaped = client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "rate it"}],
            response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema}},
        )
        assert json.loads(shaped.choices[0].message.content or "") == {"title": "example", "score": 1}


# ----- cookbook examples --------------------------------------------------------------------------------------
def test_examples_get_their_prompts_answered_and_failures_their_last_line(tmp_path: Path) -> None:
    work = tmp_path / "work"
    folder = work / "cookbook" / "demo"
    write(
        folder / "asks.py",
        """
        from rich.prompt import Prompt

        assert input("Do you want to continue? (yes/no): ") == "y"
        assert Prompt.ask("Approve?", choices=["y", "n"], default="y") == "y"
        assert Prompt.ask("Your choice", choices=["fast", "slow"]) == "fast"
        assert Prompt.ask("Enter the result", default="Email sent") == "Email sent"
        print("Available routes:")
        print("  - summarize")
        print("  - translate")
        assert input("Enter your choice: ") == "summarize"
        assert input("What would you like to do? (retry/skip): ") == "skip"
        assert input("  tone* (str) [formal, casual] - Tone: ") == "formal"
        assert input("Select an option (number): ") == "1"
        assert input("Pick a colour: ") == "blue"  # from the example's own table
        with open("made.txt", "w") as out:
            out.write("cwd is the example's folder")
        print("the end")
        """,
    )
    write(folder / "fails.py", "raise LookupError('no such thing')\n")
    write(folder / "serves.py", "app = object()\n\nif __name__ == '__main__':\n    app.serve()  # blocks forever\n")
    write(folder / "serves_nothing.py", "if __name__ == '__main__':\n    x.serve()\n")
    compat.EXAMPLE_ANSWERS["demo/asks.py"] = [("colour", "blue")]
    try:
        examples = [
            "cookbook/demo/asks.py",
            "cookbook/demo/fails.py",
            "cookbook/demo/serves.py",
            "cookbook/demo/serves_nothing.py",
        ]
        (work / "_runner").mkdir(parents=True)
        results = compat.run_cookbook(work, examples, dict(os.environ), python=sys.executable, timeout=60, workers=1)
    finally:
        del compat.EXAMPLE_ANSWERS["demo/asks.py"]
    asks, fails, serves, serves_nothing = results
    assert asks.ran and asks.mode == "run", asks.error
    assert (folder / "made.txt").exists()
    assert not fails.ran and fails.error == "LookupError: no such thing" and fails.returncode == 1
    assert serves.ran and serves.mode == "import"
    assert not serves_nothing.ran and "the module built no app" in serves_nothing.error


# ----- the command line -------------------------------------------------------------------------------------
def test_help_works() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "compat.py"), "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    for option in ("MIRROR", "mirror", "--json", "--only", "-k", "--pg-url"):
        assert option in done.stdout


def test_a_missing_mirror_is_the_runner_failing() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "compat.py"), "/nonexistent/mirror"], capture_output=True, text=True
    )
    assert done.returncode != 0 and "not a directory" in done.stderr


@pytest.mark.skipif(not MIRROR.exists(), reason=f"needs the reference's mirror at {MIRROR} ($COMPAT_MIRROR)")
def test_end_to_end_on_one_reference_file(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    status = ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=all"]
    before = subprocess.run(status, capture_output=True, text=True, check=True).stdout
    done = subprocess.run(
        [
            sys.executable, str(ROOT / "bench" / "compat.py"), str(MIRROR), "--only", "tests",
            "-k", "unit/workflow/test_hitl_continued_events", "--json", str(report_path),
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(report_path.read_text())
    files = report["tests"]["files"]
    assert [f["file"] for f in files] == ["tests/unit/workflow/test_hitl_continued_events.py"]
    assert files[0]["collected"] and len(files[0]["tests"]) > 0
    assert "unit/workflow/test_hitl_continued_events.py" in done.stdout
    # nothing of the reference lands in the repository
    assert subprocess.run(status, capture_output=True, text=True, check=True).stdout == before
