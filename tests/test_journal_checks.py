"""A changed workflow never replays the wrong step: the journal records which node produced each entry,
and a run paused under one definition either continues correctly under a changed one or is refused with
`JournalMismatchError`, changing nothing. Journals written before node records (tests/fixtures) still
continue."""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kern._sync import run_sync
from kern.db.base import BaseDb
from kern.exceptions import JournalMismatchError, WrongWorkflowError
from kern.workflow import Condition, HumanReview, Loop, OnReject, Parallel, Router, RunStatus, Steps, Workflow
from kern.workflow.journal import NODES, check_journal, node_at, tag
from kern.workflow.node import Node
from tests import corrupt
from tests.conftest import unique
from tests.fixtures import legacy_journal_flows as legacy

Build = Callable[[legacy.Calls], list[Any]]


def row(db: BaseDb, run_id: str) -> dict[str, Any]:
    stored = run_sync(db.load_run(run_id))
    return {"version": stored.version, "status": stored.status, "output": stored.output, "journal": stored.journal}


def confirm(calls: legacy.Calls) -> list[Any]:
    return [calls.step("fetch"), calls.step("review", requires_confirmation=True), calls.step("publish")]


# Each change of the definition of `confirm` above, made while a run is paused at `review` (path 1), and
# what must happen: None = it continues correctly, else (path, recorded, found) of the refusal.
CHANGES: dict[str, tuple[Build, tuple[str, str, str | None] | None]] = {
    "add before the paused step": (
        lambda c: [c.step("fetch"), c.step("lint"), c.step("review", requires_confirmation=True), c.step("publish")],
        ("1", "Step:review", "Step:lint"),
    ),
    "add after the paused step": (
        lambda c: [c.step("fetch"), c.step("review", requires_confirmation=True), c.step("publish"), c.step("notify")],
        None,
    ),
    "remove a step not reached": (lambda c: [c.step("fetch"), c.step("review", requires_confirmation=True)], None),
    "remove a completed step": (
        lambda c: [c.step("review", requires_confirmation=True), c.step("publish")],
        ("0", "Step:fetch", "Step:review"),
    ),
    "rename the paused step": (
        lambda c: [c.step("fetch"), c.step("approve", requires_confirmation=True), c.step("publish")],
        ("1", "Step:review", "Step:approve"),
    ),
    "rename a completed step": (
        lambda c: [c.step("load"), c.step("review", requires_confirmation=True), c.step("publish")],
        ("0", "Step:fetch", "Step:load"),
    ),
    "move the paused step first": (
        lambda c: [c.step("review", requires_confirmation=True), c.step("fetch"), c.step("publish")],
        ("0", "Step:fetch", "Step:review"),
    ),
    "wrap a completed step in Steps": (
        lambda c: [Steps(name="fetch", steps=[c.step("fetch")]), c.step("review", requires_confirmation=True)],
        ("0", "Step:fetch", "Steps:fetch"),
    ),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_each_change_on_a_paused_run(db: BaseDb, change: str) -> None:
    name = unique("deploy")
    old_calls, new_calls = legacy.Calls(), legacy.Calls()
    old = Workflow(name=name, db=db, steps=confirm(old_calls))
    out = old.run("in")
    assert out.is_paused and old_calls.log == ["fetch"]
    assert run_sync(db.load_run(out.run_id)).journal[NODES] == {"0": "Step:fetch", "1": "Step:review"}
    build, refusal = CHANGES[change]
    new = Workflow(name=name, db=db, steps=build(new_calls))
    before = row(db, out.run_id)
    out.step_requirements[-1].confirm(by="alice")
    if refusal is None:
        done = new.continue_run(out)
        assert done.status == RunStatus.COMPLETED
        assert "fetch" not in new_calls.log and new_calls.log[0] == "review"  # the journaled fetch result is used
        assert done.step_results[0].content == "fetch<None>"
        assert new_calls.log == [n.name for n in new.steps[1:]]
        return
    path, recorded, found = refusal
    with pytest.raises(JournalMismatchError) as info:
        new.continue_run(out)
    err = info.value
    assert (err.path, err.recorded, err.found, err.run_id) == (path, recorded, found, out.run_id)
    assert f"at path '{path}'" in str(err) and recorded in str(err) and str(found) in str(err)
    assert row(db, out.run_id) == before and before["status"] == "PAUSED"  # nothing changed
    assert run_sync(db.audit_log(run_id=out.run_id)) == []
    assert new_calls.log == []
    # the same run continues under the definition it was paused with
    done = old.continue_run(out)
    assert done.status == RunStatus.COMPLETED and done.content == "publish<review<fetch<None>>>"
    assert old_calls.log == ["fetch", "review", "publish"]


def nested(calls: legacy.Calls, *, inner: list[str] | None = None) -> list[Any]:
    names = inner or ["a", "b"]
    return [
        calls.step("prep"),
        Condition(name="check", evaluator=True, steps=[calls.step(n) for n in names], else_steps=[calls.step("z")]),
        Steps(name="gate", steps=[calls.step("ask", requires_confirmation=True)]),
    ]


@pytest.mark.parametrize(
    ("inner", "refusal"),
    [
        # a step added at the end of a branch that had finished: the branch's journaled result stands
        (["a", "b", "c"], None),
        (["a", "x", "b"], ("1/if/1", "Step:b", "Step:x")),
        (["a"], ("1/if/1", "Step:b", None)),
        (["b", "a"], ("1/if/0", "Step:a", "Step:b")),
    ],
)
def test_changes_inside_a_container(db: BaseDb, inner: list[str], refusal: tuple[str, str, str | None]) -> None:
    name = unique("nested")
    out = Workflow(name=name, db=db, steps=nested(legacy.Calls())).run("in")
    assert out.is_paused and out.step_requirements[-1].step_path == "2/0"
    calls = legacy.Calls()
    new = Workflow(name=name, db=db, steps=nested(calls, inner=inner))
    before = row(db, out.run_id)
    out.step_requirements[-1].confirm()
    if refusal is None:
        done = new.continue_run(out)
        assert done.status == RunStatus.COMPLETED and calls.log == ["ask"]
        assert done.content == "ask<b<a<prep<None>>>>"  # the condition's journaled result, not a re-run
        return
    with pytest.raises(JournalMismatchError) as info:
        new.continue_run(out)
    assert (info.value.path, info.value.recorded, info.value.found) == refusal
    assert row(db, out.run_id) == before and calls.log == []


def every_primitive(calls: legacy.Calls) -> list[Any]:
    """Every way a path is built: branches, iterations and their retries, router retries, parallel."""
    return [
        Parallel(calls.step("p1"), Steps(name="p2", steps=[calls.step("p2a")]), name="par"),
        Condition(name="cond", evaluator=False, steps=[calls.step("yes")], else_steps=[calls.step("no")]),
        Loop(
            name="loop",
            steps=[calls.step("body")],
            max_iterations=2,
            requires_iteration_review=True,
            on_reject=OnReject.retry,
        ),
        Router(
            name="route",
            selector=lambda s: "r2",
            choices=[calls.step("r1"), Steps(name="r2", steps=[calls.step("r2a")])],
            requires_output_review=True,
            on_reject=OnReject.retry,
        ),
    ]


def test_every_recorded_path_resolves_to_its_node(db: BaseDb) -> None:
    """The check before a claim finds, in an unchanged definition, exactly the node the engine entered."""
    wf = Workflow(name=unique("paths"), db=db, steps=every_primitive(legacy.Calls()))
    out = wf.run("in")
    decisions = iter(["reject", "reject", "select", "confirm"])  # loop, router review, re-route, review
    while out.is_paused:
        req = out.step_requirements[-1]
        decision = next(decisions)
        if decision == "select":
            req.select("r2")
        else:
            req.reject(feedback="again") if decision == "reject" else req.confirm()
        check_journal(wf.steps, out.run_id, run_sync(db.load_run(out.run_id)).journal, [])
        out = wf.continue_run(out)
    assert out.status == RunStatus.COMPLETED
    recorded = run_sync(db.load_run(out.run_id)).journal[NODES]
    for path in ("0/1/0", "1/else/0", "2/iter/0/0", "2/iter/1/0", "3~1/1", "3~1/1/0"):
        assert path in recorded, (path, sorted(recorded))
    for path, name in recorded.items():
        node = node_at(wf.steps, path)
        assert isinstance(node, Node) and tag(node) == name, path


def test_the_engine_compares_as_it_enters_a_node(tmp_path: Path) -> None:
    """A primitive the pre-claim check cannot look into: the engine's own comparison at entry stops the
    run rather than hand the journaled result to another step."""
    from kern.db.sqlite import SqliteDb
    from kern.workflow.engine import run_sequence

    class Wrap(Node):
        step_type = "Wrap"

        def __init__(self, name: str, steps: list[Node]) -> None:
            self.steps, self.name, self.description, self.human_review = steps, name, None, HumanReview()

        async def execute(self, ctx, path, chain):  # type: ignore[no-untyped-def]
            done = ctx.enter(self, path)
            if done is not None:
                return done
            outputs = await run_sequence(ctx, self.steps, path, chain)
            return ctx.finish(path, outputs[-1])

    db = SqliteDb(db_file=tmp_path / "k.db")
    name = unique("custom")
    calls = legacy.Calls()
    out = Workflow(name=name, db=db, steps=[Wrap("w", [calls.step("a"), calls.step("b", requires_confirmation=True)])])
    out = out.run("in")
    assert out.is_paused and out.step_requirements[-1].step_path == "0/1"
    changed_steps = [Wrap("w", [calls.step("x"), calls.step("b", requires_confirmation=True)])]
    changed = Workflow(name=name, db=db, steps=changed_steps)
    out.step_requirements[-1].confirm()
    done = changed.continue_run(out)
    assert done.status == RunStatus.ERROR and "JournalMismatchError" in done.error and "'0/0'" in done.error
    assert calls.log == ["a"]


def test_a_refused_run_is_left_alone_by_expire_due(db: BaseDb) -> None:
    name = unique("expire")
    calls = legacy.Calls()
    steps = [calls.step("s1"), calls.step("s2", requires_confirmation=True, hitl_timeout=0.01, on_timeout="approve")]
    out = Workflow(name=name, db=db, steps=steps).run("in")
    changed = Workflow(name=name, db=db, steps=[calls.step("s0"), *steps])
    before = row(db, out.run_id)
    assert changed.expire_due(now=out.step_requirements[-1].deadline + 1) == []
    assert row(db, out.run_id) == before


# ----- journals written by the engine before node records (tests/fixtures/legacy_journals.json) ----------------
def load_legacy(db: BaseDb, kind: str) -> tuple[str, str]:
    """Store a run paused by the old engine under fresh ids (the PostgreSQL tables are shared)."""
    fixture = json.loads(legacy.FIXTURE.read_text())[kind]
    output, journal = copy.deepcopy(fixture["output"]), fixture["journal"]
    assert NODES not in journal
    name = unique(f"legacy-{kind}")
    output.update(run_id=uuid.uuid4().hex, session_id=uuid.uuid4().hex, workflow_name=name)
    for req in output["step_requirements"]:
        req["requirement_id"] = uuid.uuid4().hex
    run_sync(db.save_run(output, journal, version=0, new_requirement=output["step_requirements"][-1]))
    return output["run_id"], name


def finish(wf: Workflow, out: Any, choose: Callable[[Any], None]) -> Any:
    while out.is_paused:
        choose(out.step_requirements[-1])
        out = wf.continue_run(out)
    return out


def choose(req: Any) -> None:
    req.select("y") if req.requires_route_selection else req.confirm()


@pytest.mark.parametrize(
    ("kind", "remaining"),
    [
        ("linear", ["review", "publish"]),
        # paused at iteration 2's review, iteration 1 approved under the old rule (approve = go on): that
        # decision keeps its meaning, the approval given now ends the loop (approve = stop here)
        ("nested", ["finish"]),
        ("routed", ["y", "end"]),
    ],
)
def test_legacy_journals_continue(db: BaseDb, kind: str, remaining: list[str]) -> None:
    run_id, name = load_legacy(db, kind)
    calls = legacy.Calls()
    wf = Workflow(name=name, db=db, steps=legacy.FLOWS[kind](calls))
    done = finish(wf, wf.get_run(run_id), choose)
    assert done.status == RunStatus.COMPLETED and calls.log == remaining
    # the same decisions on a fresh run of today's engine give the same result
    fresh_wf = Workflow(name=unique("fresh"), db=db, steps=legacy.FLOWS[kind](legacy.Calls()))
    decisions = iter(["reject"] if kind == "nested" else [])  # today's rule: going on is a rejection

    def fresh_choose(req: Any) -> None:
        req.reject() if next(decisions, None) else choose(req)

    fresh = finish(fresh_wf, fresh_wf.run("in"), fresh_choose)
    assert done.content == fresh.content and done.content is not None
    assert run_sync(db.load_run(run_id)).journal[NODES]  # recorded from now on


def test_legacy_journal_with_a_changed_definition_is_refused(db: BaseDb) -> None:
    """Old journals hold no node records, but their pauses name their step: a step inserted before the
    paused one is refused, and the run continues with the old definition."""
    run_id, name = load_legacy(db, "linear")
    calls = legacy.Calls()
    changed = Workflow(name=name, db=db, steps=[calls.step("lint"), *legacy.linear(calls)])
    out = changed.get_run(run_id)
    before = row(db, run_id)
    out.step_requirements[-1].confirm()
    with pytest.raises(JournalMismatchError) as info:
        changed.continue_run(out)
    assert (info.value.path, info.value.recorded, info.value.found) == ("1", "Step:review", "Step:fetch")
    assert row(db, run_id) == before and calls.log == []
    wf = Workflow(name=name, db=db, steps=legacy.linear(calls))
    done = wf.continue_run(out)
    assert done.content == "publish<review<fetch<None>>>" and calls.log == ["review", "publish"]


def test_a_step_named_after_a_repr_continues_in_another_process(db: BaseDb) -> None:
    """A callable object without __name__ becomes a step named after its repr, address included; another
    process (another instance) has another address, and that is no change of the workflow."""

    class Fetcher:
        def __init__(self, log: list[str]) -> None:
            self.log = log

        def __call__(self, step_input: Any) -> str:
            self.log.append("fetch")
            return "fetched"

    name = unique("repr")
    log: list[str] = []
    calls = legacy.Calls()
    out = Workflow(name=name, db=db, steps=[Fetcher(log), calls.step("ask", requires_confirmation=True)]).run("in")
    assert out.is_paused
    again = Workflow(name=name, db=db, steps=[Fetcher(log), calls.step("ask", requires_confirmation=True)])
    assert again.steps[0].name != Workflow(name=name, db=db, steps=[Fetcher(log)]).steps[0].name
    out.step_requirements[-1].confirm()
    done = again.continue_run(out)
    assert done.status == RunStatus.COMPLETED and done.content == "ask<fetched>" and log == ["fetch"]


# ----- a run given to another workflow, a journal that lost a finished step (issue 24, item 25) ---------------
def test_a_run_of_another_workflow_is_refused_naming_both(db: BaseDb) -> None:
    beta_calls, alpha_calls = legacy.Calls(), legacy.Calls()
    beta = Workflow(name=unique("beta"), db=db, steps=confirm(beta_calls))
    alpha = Workflow(name=unique("alpha"), db=db, steps=confirm(alpha_calls))  # the same shape: journal check passes
    out = beta.run("in")
    before = row(db, out.run_id)
    out.step_requirements[-1].confirm(by="alice")
    for attempt in (
        lambda: alpha.continue_run(out),
        lambda: alpha.continue_run(run_id=out.run_id, step_requirements=out.step_requirements),
        lambda: alpha.cancel_run(out.run_id, by="mallory"),
    ):
        with pytest.raises(WrongWorkflowError) as info:
            attempt()
        err = info.value
        assert (err.run_id, err.run_workflow, err.workflow) == (out.run_id, beta.name, alpha.name)
        assert repr(beta.name) in str(err) and repr(alpha.name) in str(err)
    assert row(db, out.run_id) == before and before["status"] == "PAUSED"  # nothing changed
    assert run_sync(db.audit_log(run_id=out.run_id)) == [] and alpha_calls.log == []
    done = beta.continue_run(out)
    assert done.status == RunStatus.COMPLETED and beta_calls.log == ["fetch", "review", "publish"]


LOSSES: dict[str, tuple[Build, Callable[[dict[str, Any]], None], str, str]] = {
    "a finished step's result": (confirm, lambda j: [j.pop(k) for k in ("0", "0~0")], "0", "Step:fetch"),
    "its result and its node record": (
        confirm,
        lambda j: [j.pop(k) for k in ("0", "0~0")] and j[NODES].pop("0"),
        "0",
        "Step:fetch",
    ),
    "a step inside a finished branch": (nested, lambda j: j.pop("1/if/0"), "1/if/0", "Step:a"),
    "a finished container": (nested, lambda j: j.pop("1"), "1", "Condition:check"),
}


@pytest.mark.parametrize("lost", list(LOSSES))
def test_a_journal_that_lost_a_finished_step_is_refused(db: BaseDb, lost: str) -> None:
    build, edit, path, found = LOSSES[lost]
    name = unique("lost")
    out = Workflow(name=name, db=db, steps=build(legacy.Calls())).run("in")
    assert out.is_paused
    corrupt.edit_journal(db, out.run_id, edit)
    before = row(db, out.run_id)
    calls = legacy.Calls()
    wf = Workflow(name=name, db=db, steps=build(calls))
    req = out.step_requirements[-1]
    req.confirm(by="alice")
    with pytest.raises(JournalMismatchError) as info:
        wf.continue_run(run_id=out.run_id, step_requirements=[req])
    err = info.value
    assert (err.run_id, err.path, err.recorded, err.found) == (out.run_id, path, "no result", found)
    assert f"at path {path!r}" in str(err) and "second time" in str(err)
    assert row(db, out.run_id) == before and run_sync(db.audit_log(run_id=out.run_id)) == []
    assert calls.log == []  # the finished step did not run again
    assert wf.expire_due(now=time.time() + 3600) == []  # a sweep leaves it alone too
