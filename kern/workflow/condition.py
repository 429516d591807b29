"""Condition: run `steps` when the evaluator (or the person) says so, else `else_steps`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from kern.exceptions import KernError
from kern.run.workflow import ConditionCompletedEvent, ConditionStartedEvent
from kern.workflow.cel import CelExpression, step_input_variables
from kern.workflow.container import Container
from kern.workflow.engine import StepFailed, run_sequence
from kern.workflow.injected import call_with
from kern.workflow.on_error import on_failure
from kern.workflow.step import Step, as_nodes
from kern.workflow.types import HumanReview, OnReject, StepOutput

if TYPE_CHECKING:
    from kern.workflow.engine import Chain, RunContext


class Condition(Container):
    """Branch on `evaluator`: a bool, a sync/async function of `StepInput` returning bool (it may also
    declare `session_state` and/or `run_context`), or a CEL expression string (see `kern.workflow.cel`).
    The default, True, always runs `steps`.

    With `requires_confirmation` the person decides instead and the evaluator is ignored: confirm runs
    `steps`; reject follows `on_reject` (default `else_branch`: run `else_steps`, or skip if none).

    `on_error` applies to a failure inside the branch that its step does not handle itself: `skip` ends
    the Condition there (skipped, with the error) and the run goes on; `fail` ends the run and raises the
    exception; `pause` waits for a person, whose `retry()` evaluates and runs the Condition again. Unset,
    the failure fails the run, as a step's does.
    """

    step_type = "Condition"
    default_on_reject = OnReject.else_branch

    def __init__(
        self,
        name: str | None = None,
        evaluator: bool | str | Callable[..., Any] = True,
        steps: list[Any] | None = None,
        else_steps: list[Any] | None = None,
        description: str | None = None,
        human_review: HumanReview | dict[str, Any] | None = None,
        **hitl: Any,
    ) -> None:
        self.evaluator = evaluator
        self.steps = as_nodes(steps)
        self.else_steps = as_nodes(else_steps)
        self._setup_container(name, description, human_review, hitl)
        if self.human_review.on_reject is OnReject.retry:
            raise ValueError(
                f"on_reject=retry is not supported on Condition '{self.name}'. "
                "Supported: else (the default), skip, cancel."
            )
        self._cel: CelExpression | None = None
        if isinstance(evaluator, str):
            self._cel = CelExpression(evaluator, f"Condition '{self.name}' evaluator")
        elif evaluator is None or not (isinstance(evaluator, bool) or callable(evaluator)):
            raise TypeError(
                f"Condition '{self.name}': evaluator must be a bool, a function of StepInput or a CEL "
                f"expression string, got {type(evaluator).__name__}."
            )

    async def _evaluate(self, ctx: RunContext, chain: Chain) -> str:
        if isinstance(self.evaluator, bool):
            return "if" if self.evaluator else "else"
        step_input = chain.step_input(ctx.run)
        if self._cel is not None:
            return "if" if self._cel.is_true(step_input_variables(step_input)) else "else"
        assert callable(self.evaluator)
        return "if" if await call_with(self.evaluator, (step_input,), ctx.user_values) else "else"

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["steps"] = [node.to_dict() for node in self.steps]
        data["else_steps"] = [node.to_dict() for node in self.else_steps]
        if isinstance(self.evaluator, bool):
            data["evaluator"], data["evaluator_type"] = self.evaluator, "bool"
        elif isinstance(self.evaluator, str):
            data["evaluator"], data["evaluator_type"] = self.evaluator, "cel"
        else:
            data["evaluator"] = getattr(self.evaluator, "__name__", repr(self.evaluator))
            data["evaluator_type"] = "function"
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], registry: Any = None) -> Condition:
        """A Condition from its `to_dict()` form. A function evaluator (and a Step's executor) is looked up
        by name with `registry.get_function(name)`; without a registry (or when it has none by that name)
        that is a `ValueError` naming it. A string evaluator is a CEL expression when `evaluator_type` is
        "cel" or, with no type given, when it is not a plain name."""
        evaluator: Any = data.get("evaluator", True)
        if isinstance(evaluator, str):
            kind = data.get("evaluator_type")
            if kind != "cel" and (kind == "function" or evaluator.isidentifier()):
                evaluator = _function(registry, evaluator, f"Condition {data.get('name')!r} evaluator")
        elif not isinstance(evaluator, bool):
            raise ValueError(f"Condition {data.get('name')!r}: invalid evaluator {evaluator!r} in data.")
        review = data.get("human_review")
        if not review:
            flat = ("requires_confirmation", "confirmation_message", "on_reject", "on_error")
            review = {key: data[key] for key in flat if data.get(key) is not None}
        return cls(
            name=data.get("name"),
            evaluator=evaluator,
            steps=[_node_from_dict(item, registry) for item in data.get("steps") or []],
            else_steps=[_node_from_dict(item, registry) for item in data.get("else_steps") or []],
            description=data.get("description"),
            human_review=review or None,
        )

    async def execute(self, ctx: RunContext, path: str, chain: Chain) -> StepOutput:
        done = ctx.enter(self, path)
        if done is not None:
            return done
        if ctx.streams_detail:
            await ctx.emit_detail(ConditionStartedEvent(step_name=self.name, step_path=path, step_type=self.step_type))
        confirmed = None
        if self.human_review.requires_confirmation:
            confirmed = {"run": "if", "else": "else", "skip": "skip"}[await self.confirm_start(ctx, path)]
        attempt = 0
        while True:  # more than once only when a person retries a failure (on_error="pause")
            base = path if attempt == 0 else f"{path}~{attempt}"  # a retry runs its steps afresh
            branch = confirmed or await ctx.decide(f"{base}|branch", lambda: self._evaluate(ctx, chain))
            nodes = self.steps if branch == "if" else self.else_steps if branch == "else" else []
            if not nodes:
                return self.skip(ctx, path)
            inner = chain.fork()
            try:
                outputs = await run_sequence(ctx, nodes, f"{base}/{branch}", inner)
            except (StepFailed, Exception) as failure:
                if self.human_review.on_error is None or isinstance(failure, KernError):
                    raise  # unset: the run fails as for a step (docs/differences.md); store errors are not the step's
                error, exception, step = _failure(failure)
                failed = await on_failure(ctx, self, path, attempt, error, exception, failed_step=step)
                if failed is not None:
                    return failed
                attempt += 1
                continue
            chain.join(inner)
            break
        output = self.result(outputs)
        await ctx.emit_detail(
            ConditionCompletedEvent(
                step_name=self.name, step_path=path, step_type=self.step_type, branch=branch, content=output.content
            )
        )
        return ctx.finish(path, output)


def _failure(failure: BaseException) -> tuple[str, BaseException | None, str | None]:
    """A failure inside the branch: its error text, the exception raised (if known) and the failed step."""
    if isinstance(failure, StepFailed):
        return failure.error, failure.exception, failure.step_name
    return f"{type(failure).__name__}: {failure}", failure, None


def _function(registry: Any, name: str, what: str) -> Callable[..., Any]:
    found = registry.get_function(name) if registry is not None else None
    if found is None:
        where = "in the registry" if registry is not None else "(no registry given to from_dict)"
        raise ValueError(f"{what}: function {name!r} not found {where}.")
    return cast("Callable[..., Any]", found)


def _node_from_dict(data: dict[str, Any], registry: Any) -> Any:
    """A Condition's child from its dict form: a Condition, or a Step whose executor the registry has."""
    kind = data.get("type", "Step")
    if kind == "Condition":
        return Condition.from_dict(data, registry)
    if kind == "Step" and isinstance(data.get("executor"), str):
        executor = _function(registry, data["executor"], f"Step {data.get('name')!r} executor")
        return Step(
            name=data.get("name"),
            executor=executor,
            description=data.get("description"),
            human_review=data.get("human_review") or None,
        )
    raise ValueError(
        f"Condition.from_dict cannot rebuild a {kind} ({data.get('name')!r}) from a dict: build it in code."
    )
