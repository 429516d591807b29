"""`Workflow(input_schema=...)` as the reference API documents it: an instance is accepted, a matching
dict or JSON string is parsed into the model before the first step runs, anything else is a ValueError;
a run resumed from the database (another process) sees the model again."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, Field, ValidationError

from kern.db.sqlite import SqliteDb
from kern.workflow import Step, StepInput, Workflow


class Topic(BaseModel):
    topic: str
    sources: int = Field(3, ge=1)


class Other(BaseModel):
    name: str


seen: list[object] = []


def _record(step_input: StepInput) -> str:
    seen.append(step_input.input)
    return f"{step_input.input.topic}/{step_input.input.sources}"  # type: ignore[union-attr]


def flow(db: SqliteDb, *, pause: bool = False) -> Workflow:
    steps = [Step(name="first", executor=_record), Step(name="second", executor=_record, requires_confirmation=pause)]
    return Workflow(name="schema", db=db, steps=steps, input_schema=Topic)


def test_input_is_parsed_into_the_model(tmp_path: Path) -> None:
    wf = flow(SqliteDb(db_file=tmp_path / "k.db"))
    assert wf.run(Topic(topic="a")).content == "a/3"
    assert wf.run({"topic": "b", "sources": "5"}).content == "b/5"
    assert wf.run('{"topic": "c"}').content == "c/3"
    for bad in ({"sources": 2}, {"topic": "x", "sources": 0}):
        with pytest.raises(ValidationError):
            wf.run(bad)
    for bad in (Other(name="x"), "not json", ["topic"]):
        with pytest.raises(ValueError, match=r"Topic"):
            wf.run(bad)
    with pytest.raises(TypeError, match="pydantic model"):
        Workflow(name="x", input_schema=dict)  # type: ignore[arg-type]


def test_a_resumed_run_sees_the_model_again(tmp_path: Path) -> None:
    seen.clear()
    run = flow(SqliteDb(db_file=tmp_path / "k.db"), pause=True).run({"topic": "d", "sources": 2})
    assert run.is_paused
    other = flow(SqliteDb(db_file=tmp_path / "k.db"), pause=True)  # another process: read from the file
    paused = other.get_run(run.run_id)
    paused.step_requirements[-1].confirm()
    done = other.continue_run(paused)
    assert done.content == "d/2"
    assert all(isinstance(i, Topic) for i in seen) and len(seen) == 2
