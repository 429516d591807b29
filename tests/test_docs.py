"""The documentation runs, so it cannot rot.

- The site (`mkdocs.yml`, `docs/`) builds with `mkdocs build --strict`: a broken link or anchor, a page
  missing from the nav, or an API reference to a name that is gone fails the build.
- Every fenced ```python block of README.md and docs/*.md runs, each in a fresh temporary directory (its
  SQLite files land there). When the block is followed by a plain ``` block introduced by a line that
  says "output", what the block prints must be exactly that.
- README.md's links into the repository point at files that exist, and it stays a front door.

A block runs on its own unless an HTML comment on the line just before its fence says otherwise (the
comment shows neither on the site nor on GitHub; keep such blocks few):

- `<!-- docs-test: continues -->` runs it after the block before it in the same file, in its namespace;
- `<!-- docs-test: scripted-model -->` runs it with `OPENAI_BASE_URL` pointing at kern-bot's scripted
  OpenAI-compatible server (an agent example, which would otherwise need a model server and a key).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
MARKERS = {"continues", "scripted-model"}
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(\S+)\s*-->\s*$")


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    code: str
    marker: str | None = None
    output: str | None = None  # what it must print, when the docs show it

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


@dataclass
class Chain:
    """A block that runs on its own, and the blocks that continue it."""

    blocks: list[Block] = field(default_factory=list)


def fenced(path: Path) -> Iterator[tuple[int, str, str, str | None, str]]:
    """(line, language, code, marker, text since the previous fence) for each fenced block of a file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i, since = 0, 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, language = opening.groups()
        marker = MARKER.match(lines[i - 1]) if i else None
        end = i + 1
        while end < len(lines) and not re.match(rf"^{re.escape(indent)}```\s*$", lines[end]):
            end += 1
        body = [line.removeprefix(indent) for line in lines[i + 1 : end]]
        prose = "\n".join(lines[since:i])
        yield i + 1, language, "\n".join(body) + "\n", marker.group(1) if marker else None, prose
        i = since = end + 1


def blocks(path: Path) -> list[Block]:
    found: list[Block] = []
    for line, language, code, marker, prose in fenced(path):
        if language == "python":
            found.append(Block(path, line, code, marker))
        elif language == "" and found and "output" in prose.lower() and found[-1].output is None:
            found[-1].output = code
    return found


def chains() -> list[Chain]:
    result: list[Chain] = []
    for path in DOCS:
        for block in blocks(path):
            if block.marker == "continues":
                assert result and result[-1].blocks[0].path == path, f"{block.where} continues no block"
                result[-1].blocks.append(block)
            else:
                result.append(Chain([block]))
    return result


CHAINS = chains()


def test_every_marker_is_known() -> None:
    for path in DOCS:
        for line, language, _code, marker, _prose in fenced(path):
            assert marker is None or marker in MARKERS, f"{path.name}:{line}: unknown docs-test marker {marker!r}"
            assert marker is None or language == "python", f"{path.name}:{line}: a marker on a {language!r} block"
            assert language != "py", f"{path.name}:{line}: write ```python, so the block is run"


def test_few_blocks_lean_on_something() -> None:
    leaning = [b.where for c in CHAINS for b in c.blocks if b.marker]
    assert len(leaning) <= 3, f"keep blocks that cannot run on their own few: {leaning}"
    assert sum(len(c.blocks) for c in CHAINS) >= 10  # the docs do have examples


@pytest.mark.parametrize("chain", CHAINS, ids=[c.blocks[0].where for c in CHAINS])
def test_python_block_runs(chain: Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    with contextlib.ExitStack() as stack:
        if any(b.marker == "scripted-model" for b in chain.blocks):
            from bot.scripted_model import ScriptedModel, alert_script

            model = stack.enter_context(ScriptedModel(fallback=alert_script))
            monkeypatch.setenv("OPENAI_BASE_URL", model.base_url)
            monkeypatch.setenv("OPENAI_API_KEY", "unused")
        for block in chain.blocks:
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                exec(compile(block.code, block.where, "exec"), namespace)
            if block.output is not None:
                assert printed.getvalue() == block.output, f"{block.where} printed something else than its docs show"


def test_site_builds_strict(tmp_path: Path) -> None:
    """`mkdocs build --strict`: every page in the nav, every link and anchor resolving, the API reference
    finding every name it documents."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's banner about its successor
    done = subprocess.run(  # not --quiet: it hides the warnings --strict counts, and the build passes
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    assert (tmp_path / "site" / "api" / "bot" / "index.html").exists()


def test_readme_is_a_front_door() -> None:
    """README.md is not part of the site, so its links are checked here: files, and headings for anchors
    (slugged as the site slugs them)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200, "README.md is the front door: move detail into docs/"
    for target, anchor in re.findall(r"\]\(([^)#\s]+)(?:#([^)]*))?\)", text):
        if "://" in target:
            continue
        assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"
        if anchor:
            headings = re.findall(r"^#+\s+(.*)$", (ROOT / target).read_text(encoding="utf-8"), re.MULTILINE)
            slugs = {re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", h).strip().lower()) for h in headings}
            assert anchor in slugs, f"README.md links to {target}#{anchor}: no such heading"


def test_make_demo_runs_to_its_end(capsys: pytest.CaptureFixture[str]) -> None:
    """`make demo`, which the README offers, answers its pauses (`--auto` off a terminal) and ends pointing
    at `make run`, not at something still to come."""
    from kern import demo

    assert demo.main(["--auto"]) == 0
    last = capsys.readouterr().out.strip().splitlines()
    assert last[-2].startswith("COMPLETED: ") and "make run" in last[-1]
