"""Router: run the route(s) a selector (or the person) picks from `choices`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kern.run import requirement as kinds
from kern.run.workflow import RouterCompletedEvent, RouterStartedEvent
from kern.workflow.cel import CelExpression, step_input_variables
from kern.workflow.container import Container
from kern.workflow.engine import Cancel
from kern.workflow.injected import call_with
from kern.workflow.node import Node
from kern.workflow.step import as_nodes
from kern.workflow.steps import Steps
from kern.workflow.types import HumanReview, StepInput, StepOutput, StepRequirement

if TYPE_CHECKING:
    from kern.workflow.engine import Chain, RunContext


class Router(Container):
    """Pick routes from `choices` and run them in order.

    `selector(step_input)` (sync or async) returns a choice, a list of choices, or their names; it may
    also declare `session_state`, `run_context` and `step_choices` (the choices). A string selector is a
    CEL expression giving a choice's name (see `kern.workflow.cel`). A list among `choices` becomes a
    `Steps` of those steps, named `steps_group_<index>`. With `requires_user_input=True` the person
    selects instead (`req.select(name)`; several with `allow_multiple_selections=True`); the selector,
    if any, is what an approving timeout picks. Also supports `requires_confirmation` (before
    selection) and `requires_output_review`. A Router with neither a selector nor
    `requires_user_input` can be built but not run (its run ends with ERROR, naming it).
    """

    step_type = "Router"

    def __init__(
        self,
        name: str | None = None,
        selector: str | Callable[..., Any] | None = None,
        choices: list[Any] | None = None,
        description: str | None = None,
        allow_multiple_selections: bool = False,
        human_review: HumanReview | dict[str, Any] | None = None,
        **hitl: Any,
    ) -> None:
        self.selector = selector
        self.choices = [
            Steps(name=f"steps_group_{index}", steps=choice) if isinstance(choice, list) else choice
            for index, choice in enumerate(choices or [])
        ]
        self.choices = as_nodes(self.choices)
        if not self.choices:
            raise ValueError(f"Router {name!r} needs at least one choice.")
        names = [c.name for c in self.choices]
        if len(set(names)) != len(names):
            raise ValueError(f"Router {name!r}: choice names must be unique, got {names}.")
        self.allow_multiple_selections = allow_multiple_selections
        self._setup_container(name, description, human_review, hitl)
        self._cel: CelExpression | None = None
        if isinstance(selector, str):
            self._cel = CelExpression(selector, f"Router '{self.name}' selector")
        elif selector is not None and not callable(selector):
            raise TypeError(
                f"Router '{self.name}': selector must be a function or a CEL expression string, "
                f"got {type(selector).__name__}."
            )

    @property
    def choice_names(self) -> list[str]:
        return [c.name for c in self.choices]

    def create_output_review_requirement(
        self, step_index: int, step_input: StepInput | None, step_output: StepOutput, retry_count: int = 0
    ) -> StepRequirement:
        """The review pause after the chosen route(s) ran, with the choices a re-route may pick."""
        requirement = super().create_output_review_requirement(step_index, step_input, step_output, retry_count)
        requirement.available_choices = self.choice_names
        requirement.allow_multiple_selections = self.allow_multiple_selections
        return requirement

    def _names(self, picked: Any) -> list[str]:
        items = picked if isinstance(picked, (list, tuple)) else [picked]
        names = [i.name if isinstance(i, Node) else str(i) for i in items if i is not None]
        unknown = [n for n in names if n not in self.choice_names]
        if unknown:
            raise ValueError(
                f"Router '{self.name}' selector returned unknown route(s) {unknown}. "
                f"Choices: {', '.join(self.choice_names)}"
            )
        return names

    async def _select(self, ctx: RunContext, chain: Chain) -> list[str]:
        if self.selector is None:
            if self.human_review.requires_user_input:  # an approving timeout with nothing to pick: skipped
                return []
            raise ValueError(
                f"Router '{self.name}' has no selector and no requires_user_input: nothing picks its route."
            )
        step_input = chain.step_input(ctx.run)
        if self._cel is not None:
            variables = {**step_input_variables(step_input), "step_choices": self.choice_names}
            picked = self._cel.evaluate(variables)
            return self._names(picked if isinstance(picked, (list, tuple)) else str(picked))
        assert callable(self.selector)
        return self._names(
            await call_with(self.selector, (step_input,), lambda: ctx.user_values(step_choices=self.choices))
        )

    async def execute(self, ctx: RunContext, path: str, chain: Chain) -> StepOutput:
        done = ctx.enter(self, path)
        if done is not None:
            return done
        review = self.human_review
        if ctx.streams_detail:
            await ctx.emit_detail(RouterStartedEvent(step_name=self.name, step_path=path, step_type=self.step_type))
        if await self.confirm_start(ctx, path) != "run":
            return self.skip(ctx, path)
        if review.requires_user_input:
            decision = await ctx.gate(
                self,
                path,
                kinds.ROUTE_SELECTION,
                message=review.user_input_message or f"Choose the route for '{self.name}'",
                available_choices=self.choice_names,
                allow_multiple_selections=self.allow_multiple_selections,
            )
            if decision["action"] == "reject":
                return self.skip(ctx, path)
            if decision["action"] == "auto":
                names = await ctx.decide(f"{path}|route", lambda: self._select(ctx, chain))
            else:
                names = decision["choices"]
        else:
            names = await ctx.decide(f"{path}|route", lambda: self._select(ctx, chain))
        if not names:
            return self.skip(ctx, path)

        attempt = 0
        extra: dict[str, Any] = {}
        start = chain.fork()
        while True:
            branch = start.fork(extra)
            base = path if attempt == 0 else f"{path}~{attempt}"
            outputs = []
            for name in names:
                index = self.choice_names.index(name)
                out = await self.choices[index].execute(ctx, f"{base}/{index}", branch)
                outputs.append(out)
                branch.advance(out)
                if branch.stopped:
                    break
            output = self.result(outputs)
            if review.requires_output_review:
                decision = await ctx.gate(
                    self,
                    path,
                    kinds.OUTPUT_REVIEW,
                    key=f"{path}|output_review|{attempt}",
                    message=review.output_review_message or f"Review the output of router '{self.name}'",
                    step_output=output,
                    retry_count=attempt,
                    available_choices=self.choice_names,
                    allow_multiple_selections=self.allow_multiple_selections,
                )
                if decision["action"] == "edit":
                    output.content = decision["output"]
                    branch.previous_content = output.content
                elif decision["action"] == "reject":
                    if ctx.rejected(self, decision) != "retry":
                        return self.skip(ctx, path)
                    if attempt >= review.max_retries:
                        raise Cancel(f"Max retries ({review.max_retries}) reached for router '{self.name}'")
                    attempt += 1
                    extra = {"rejection_feedback": decision.get("feedback"), "previous_output": output.content}
                    names = await self._reroute(ctx, path, chain, attempt, names)
                    if not names:
                        return self.skip(ctx, path)
                    continue
            chain.join(branch)
            await ctx.emit_detail(
                RouterCompletedEvent(
                    step_name=self.name,
                    step_path=path,
                    step_type=self.step_type,
                    selected=list(names),
                    content=output.content,
                )
            )
            return ctx.finish(path, output)

    async def _reroute(self, ctx: RunContext, path: str, chain: Chain, attempt: int, previous: list[str]) -> list[str]:
        """After a rejected output review with on_reject=retry: the person picks the route(s) to run next.

        An approving timeout runs the selector again (no selector: the same routes); a rejection skips
        the router. Runs paused before re-routing existed re-ran the same routes: their journal already
        holds that attempt's results, and those routes are kept.
        """
        key = f"{path}|route_selection|{attempt}"
        if key not in ctx.journal and any(k.startswith(f"{path}~{attempt}/") for k in ctx.journal):
            return previous
        decision = await ctx.gate(
            self,
            path,
            kinds.ROUTE_SELECTION,
            key=key,
            message=self.human_review.user_input_message or f"Pick a different route for '{self.name}'",
            available_choices=self.choice_names,
            allow_multiple_selections=self.allow_multiple_selections,
            retry_count=attempt,
        )
        if decision["action"] == "reject":
            return []
        if decision["action"] == "auto":
            if self.selector is None:
                return previous
            return await ctx.decide(f"{path}|route|{attempt}", lambda: self._select(ctx, chain))
        return list(decision["choices"])
