"""A step-level pause: what the person must decide, and what they decided."""

from __future__ import annotations

import builtins
import functools
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import Field, GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema

from kern._json import to_jsonable, unstorable
from kern.ids import new_id
from kern.run.agent import RunRequirement  # an executor pause holds the agent's; also the reference API's path
from kern.run.kinds import (  # re-exported: `kinds.CONFIRMATION` with `from kern.run import requirement as kinds`
    CONFIRMATION,
    ERROR,
    EXECUTOR,
    ITERATION_REVIEW,
    KINDS,  # noqa: F401
    OUTPUT_REVIEW,
    ROUTE_SELECTION,
    UNSPECIFIED,
    USER_INPUT,
)
from kern.run.requirement_args import DOCUMENTED_KEYS, DOCUMENTED_ONLY, documented_arguments
from kern.run.stored import JSONABLE, StoredForm, custom_form
from kern.run.values import OnReject, OnTimeout, StepOutput, UserInputField
from kern.run.values import coerce_field as _coerce

# Which resolution methods each kind of pause accepts.
_METHODS = {
    "confirm": (CONFIRMATION, OUTPUT_REVIEW, ITERATION_REVIEW),
    "reject": (CONFIRMATION, OUTPUT_REVIEW, ITERATION_REVIEW, USER_INPUT),
    "edit": (OUTPUT_REVIEW, ITERATION_REVIEW),
    "set_user_input": (USER_INPUT,),
    "select": (ROUTE_SELECTION,),
    "retry": (ERROR,),
    "skip": (ERROR,),
}


_ERROR_PREFIX = re.compile(r"([A-Za-z_][\w.]*): (.*)", re.DOTALL)


def _split_error(error: str | None) -> tuple[str | None, str | None]:
    """Split a step error ("ValueError: bad input", as kern records a raised exception) into the class
    name and the message. Text that does not start with an exception class name is all message."""
    if error is None:
        return None, None
    found = _ERROR_PREFIX.fullmatch(error)
    if found:
        name = found.group(1)
        short = name.rsplit(".", 1)[-1]
        builtin = getattr(builtins, short, None)
        is_exception = isinstance(builtin, type) and issubclass(builtin, BaseException)
        if is_exception or short.endswith(("Error", "Exception")):
            return short, found.group(2)
    return None, error


class _Parsed:
    """A field whose every assignment is parsed: `req.on_reject = "cancel"` (a plain string, as documented)
    becomes the enum, like the constructor's argument; an unknown value is a ValueError at once, not a
    surprise at continue time. (A descriptor, not `__setattr__`: that would run for every field.)"""

    def __init__(self, parse: Any, default: Any) -> None:
        self._parse = parse
        self._default = default

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = name  # the field's own name in the instance dict: what pydantic's validation sets

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        return self._default if obj is None else obj.__dict__[self._slot]

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self._slot] = self._parse(value)


@functools.lru_cache(maxsize=4096)
def derived_step_id(path: str | None, name: str | None) -> str:
    """The id of a step that has none of its own, from its position and name: the same in every process and
    every run (cached: uuid5 is a SHA-1, and events and requirements ask for it on every pause)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kern-step:{path}:{name}"))


class _StepId:
    """`step_id`: as given, else derived from the step's path and name, the same in every process. The
    instance dict holds None for a derived id, so the stored form leaves it out."""

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return None  # the field's default
        return obj.__dict__["step_id"] or derived_step_id(obj.step_path, obj.step_name)

    def __set__(self, obj: Any, value: str | None) -> None:
        obj.__dict__["step_id"] = value


@dataclass
class StepRequirement:
    """One pause of a workflow run.

    `kind` says what the person must do; the `requires_*` flags say the same for code written against
    them. Resolve it with the method that fits the kind (a wrong one is a `ValueError`), then call
    `workflow.continue_run(run_output)`.
    """

    # Kept in the instance dict beside the fields, and stored, only when given explicitly (otherwise read
    # off `step_path` and `error`): see the `step_index` and `error_type` properties.
    STORED_EXTRA_KEYS: ClassVar[tuple[str, ...]] = ("step_index", "error_type")

    step_name: str
    kind: str
    step_path: str = ""
    step_type: str = "Step"
    requirement_id: str = field(default_factory=new_id)
    gate_key: str = ""
    message: str | None = None
    user_input_schema: list[UserInputField] | None = None
    step_output: StepOutput | None = None  # a plain value is wrapped in a StepOutput
    iteration: int | None = None
    available_choices: list[str] | None = None
    allow_multiple_selections: bool = False
    error: str | None = None
    on_reject: OnReject = _Parsed(lambda v: OnReject.parse(v, "on_reject") or OnReject.skip, OnReject.skip)  # type: ignore[assignment]
    max_retries: int | None = 3  # None (the documented constructor's default): no limit of its own
    retry_count: int = 0
    timeout: float | None = None
    on_timeout: OnTimeout | None = _Parsed(lambda v: OnTimeout.parse(v, "on_timeout"), None)  # type: ignore[assignment]
    deadline: float | None = None
    created_at: float = field(default_factory=time.time)
    executor_requirements: list[RunRequirement] | None = None
    step_id: str | None = _StepId()  # type: ignore[assignment]  # derived from the step's path and name when not given
    executor_id: str | None = None
    executor_name: str | None = None
    executor_type: str | None = None  # "agent" | "team"
    executor_run_id: str | None = None
    # Resolution
    status: str = "pending"  # pending | resolved | timed_out
    confirmed: bool | None = None
    rejection_feedback: str | None = None
    note: str | None = None  # what the person said with an approval (a rejection's is `rejection_feedback`)
    user_input: Annotated[dict[str, Any] | None, JSONABLE] = None
    edited_output: Annotated[Any, JSONABLE] = None
    selected_choices: list[str] | None = None
    error_action: str | None = None  # retry | skip
    resolved_by: str | None = None
    resolved_at: float | None = None
    timed_out: bool = False
    executor_session_id: str | None = None
    # accepted as documented; not stored (a continued step's input is rebuilt)
    step_input: Annotated[Any, Field(exclude=True)] = None

    def __post_init__(self) -> None:
        if self.executor_requirements and any(isinstance(r, dict) for r in self.executor_requirements):
            self.executor_requirements = [
                RunRequirement.from_dict(r) if isinstance(r, dict) else r for r in self.executor_requirements
            ]
        if not isinstance(self.step_output, StepOutput) and (
            self.step_output is not None or self.kind in (OUTPUT_REVIEW, ITERATION_REVIEW)
        ):
            self.step_output = StepOutput(content=self.step_output, step_name=self.step_name, step_type=self.step_type)

    # ----- what the pause asks for -------------------------------------------------------------
    @property
    def requires_confirmation(self) -> bool:
        """True for a confirmation, and for an output or iteration review (resolved by confirm/reject too,
        as the reference API models it); `needs_confirmation` and `kind` tell a plain confirmation apart."""
        return self.kind in (CONFIRMATION, OUTPUT_REVIEW, ITERATION_REVIEW)

    @property
    def requires_user_input(self) -> bool:
        return self.kind == USER_INPUT

    @property
    def requires_output_review(self) -> bool:
        return self.kind in (OUTPUT_REVIEW, ITERATION_REVIEW)

    @property
    def requires_iteration_review(self) -> bool:
        return self.kind == ITERATION_REVIEW

    @property
    def requires_route_selection(self) -> bool:
        return self.kind == ROUTE_SELECTION

    @property
    def requires_error_resolution(self) -> bool:
        return self.kind == ERROR

    @property
    def requires_executor_input(self) -> bool:
        return self.kind == EXECUTOR

    @property
    def confirmation_message(self) -> str | None:
        """The message of a pause resolved by confirm/reject: a confirmation, or a review (the reference
        API's loop example prints `confirmation_message` for an iteration review)."""
        return self.message if self.kind in (CONFIRMATION, OUTPUT_REVIEW, ITERATION_REVIEW) else None

    @property
    def user_input_message(self) -> str | None:
        return self.message if self.kind in (USER_INPUT, ROUTE_SELECTION) else None

    @property
    def output_review_message(self) -> str | None:
        return self.message if self.kind in (OUTPUT_REVIEW, ITERATION_REVIEW) else None

    @property
    def is_post_execution(self) -> bool:
        """True for pauses after the primitive ran (output and iteration reviews): `step_output` is set."""
        return self.kind in (OUTPUT_REVIEW, ITERATION_REVIEW)

    @property
    def step_index(self) -> int | None:
        """Index of the top-level step this pause is in (`step_path` gives the full position)."""
        if self.__dict__.get("step_index") is not None:
            return self.__dict__["step_index"]
        found = re.match(r"\d+", self.step_path)
        return int(found.group()) if found else None

    @step_index.setter
    def step_index(self, value: int | None) -> None:
        self.__dict__["step_index"] = value

    @property
    def error_type(self) -> str | None:
        """The exception class name of an error pause, when the step failed by raising."""
        if self.__dict__.get("error_type") is not None:
            return self.__dict__["error_type"]
        return _split_error(self.error)[0]

    @error_type.setter
    def error_type(self, value: str | None) -> None:
        self.__dict__["error_type"] = value

    @property
    def error_message(self) -> str | None:
        """The exception message of an error pause (without the class name; see `error_type`)."""
        return _split_error(self.error)[1]

    @property
    def timeout_at(self) -> datetime | None:
        """The deadline as an aware UTC datetime, for countdowns (`deadline` is the same as a timestamp)."""
        return datetime.fromtimestamp(self.deadline, tz=UTC) if self.deadline is not None else None

    @property
    def is_timed_out(self) -> bool:
        """True once its deadline applied (`timed_out`), or while its deadline has passed with no decision
        made yet. A decision made before the deadline is never counted as timed out."""
        if self.timed_out:
            return True
        return (
            self.deadline is not None
            and self.status == "pending"
            and not self._decided()
            and time.time() >= self.deadline
        )

    @property
    def needs_confirmation(self) -> bool:
        return self.kind == CONFIRMATION and not self.is_resolved  # a review is listed as a review

    @property
    def needs_user_input(self) -> bool:
        return self.requires_user_input and not self.is_resolved

    @property
    def needs_output_review(self) -> bool:
        return self.requires_output_review and not self.is_resolved

    @property
    def needs_route_selection(self) -> bool:
        return self.requires_route_selection and not self.is_resolved

    @property
    def needs_executor_resolution(self) -> bool:
        return self.requires_executor_input and not self.is_resolved

    @property
    def needs_error_resolution(self) -> bool:
        return self.requires_error_resolution and not self.is_resolved

    @property
    def is_resolved(self) -> bool:
        """True once the person (or a timeout) has decided; a requirement that asks for nothing (built with
        none of the `requires_*` flags) is resolved from the start."""
        return self.status != "pending" or self.kind == UNSPECIFIED or self._decided()

    def _decided(self) -> bool:
        """Whether a decision is recorded (whatever the status)."""
        if self.kind == EXECUTOR:  # (none at all: nothing to decide, as in the reference API)
            return all(getattr(r, "is_resolved", False) for r in self.executor_requirements or [])
        return (
            self.confirmed is not None
            or self.user_input is not None
            or self.selected_choices is not None
            or self.error_action is not None
        )

    @property
    def needs(self) -> str:
        """A short phrase saying what resolves this pause, for error messages and UIs."""
        return {
            CONFIRMATION: "confirm() or reject()",
            USER_INPUT: "set_user_input(...)",
            OUTPUT_REVIEW: "confirm(), edit(...) or reject(feedback=...)",
            ITERATION_REVIEW: "confirm(), edit(...) or reject(feedback=...)",
            ROUTE_SELECTION: "select(...)",
            ERROR: "retry() or skip()",
            EXECUTOR: "a decision on each of its executor_requirements",
            UNSPECIFIED: "nothing (it asks for nothing: none of the requires_* flags was set)",
        }[self.kind]

    # ----- resolution -----------------------------------------------------------------------------
    def _check(self, method: str) -> None:
        if self.kind == UNSPECIFIED:
            raise ValueError(
                f"{method}() does not apply: the requirement of step '{self.step_name}' asks for nothing "
                "(it was built with none of the requires_* flags)."
            )
        if self.kind not in _METHODS[method]:
            raise ValueError(
                f"{method}() does not apply to the {self.kind} pause of step '{self.step_name}'; it needs {self.needs}."
            )
        if self.status != "pending":
            raise ValueError(
                f"The {self.kind} pause of step '{self.step_name}' was already {self.status}"
                + (f" by {self.resolved_by}" if self.resolved_by else "")
                + "."
            )

    def _mark(self, by: str | None) -> None:
        self.resolved_by = by
        self.resolved_at = time.time()

    def _clear(self) -> None:
        self.confirmed = None
        self.rejection_feedback = None
        self.note = None
        self.edited_output = None

    def confirm(self, *, by: str | None = None, note: str | None = None) -> None:
        """Approve: the gated primitive runs, or the reviewed output is kept. `note` (a comment with the
        approval) is kept in the audit log with the decision; the step does not see it."""
        self._check("confirm")
        self._clear()
        self.confirmed = True
        self.note = note or None
        self._mark(by)

    def reject(self, feedback: str | None = None, *, by: str | None = None) -> None:
        """Reject; `on_reject` decides what follows. `feedback` reaches a retried step."""
        self._check("reject")
        self._clear()
        self.confirmed = False
        self.rejection_feedback = feedback
        self._mark(by)

    def edit(self, new_output: Any, *, by: str | None = None) -> None:
        """Accept the reviewed output, replaced by `new_output`."""
        self._check("edit")
        self._clear()
        self.confirmed = True
        self.edited_output = new_output
        self._mark(by)

    def check_user_input(self, **values: Any) -> tuple[dict[str, Any], dict[str, str]]:
        """Validate values for this user-input pause without changing anything.

        Returns the coerced input and the problems by field name (empty when valid); unknown fields
        are reported under their own names.
        """
        schema = self.user_input_schema
        if not schema:
            unreadable = {name: problem for name, value in values.items() if (problem := unstorable(value))}
            return dict(values), unreadable
        known = {f.name: f for f in schema}
        problems: dict[str, str] = {}
        for name in values:
            if name not in known:
                problems[name] = f"unknown field (expected: {', '.join(known)})"
        result: dict[str, Any] = {}
        for name, field_def in known.items():
            value = values.get(name, field_def.value)
            if field_def.is_missing(value):
                if field_def.required:
                    problems[name] = "required" if value is None or value == "" else "required (only spaces given)"
                else:
                    result[name] = None
                continue
            try:
                result[name] = _coerce(field_def, value)
            except ValueError as exc:
                problems[name] = str(exc).removeprefix(f"{name}: ")
        return result, problems

    def set_user_input(self, *, by: str | None = None, **values: Any) -> None:
        """Provide the values of a user-input pause.

        The whole input is validated against `user_input_schema` (missing required fields, wrong
        types, values outside `allowed_values`); strings from forms are coerced (`"3"` -> 3 for int).
        On error a `ValueError` names every bad field and nothing changes.
        """
        self._check("set_user_input")
        result, problems = self.check_user_input(**values)
        if problems:
            detail = "; ".join(f"{name}: {problem}" for name, problem in problems.items())
            raise ValueError(f"Invalid input for step '{self.step_name}': {detail}")
        for field_def in self.user_input_schema or []:
            field_def.value = result[field_def.name]
        self.user_input = result
        self._mark(by)

    def select(self, *choices: str, by: str | None = None) -> None:
        """Choose the route(s) a Router runs. Anything but known route names (an unknown name, None, a
        number) is a `ValueError` listing the choices, and nothing changes."""
        self._check("select")
        names: list[Any] = []
        for group in choices:
            names.extend([group] if isinstance(group, str) or not isinstance(group, (list, tuple)) else group)
        self._check_routes(names)
        self.selected_choices = list(dict.fromkeys(names))
        self._mark(by)

    def _check_routes(self, names: list[Any]) -> None:
        """Raise a `ValueError` listing the choices unless `names` is a valid selection for this router."""
        available = self.available_choices or []
        if not names:
            raise ValueError(f"select() needs at least one route. Choices: {', '.join(available)}")
        unknown = [n for n in names if not isinstance(n, str) or n not in available]
        if unknown:
            raise ValueError(
                f"Unknown route(s) {', '.join(repr(n) for n in unknown)} for router '{self.step_name}'. "
                f"Choices: {', '.join(available)}"
            )
        if len(names) > 1 and not self.allow_multiple_selections:
            raise ValueError(
                f"Router '{self.step_name}' takes one route (allow_multiple_selections is False); got {len(names)}."
            )

    def select_multiple(self, choices: list[str], *, by: str | None = None) -> None:
        """Choose several routes at once (needs `allow_multiple_selections`)."""
        self.select(*choices, by=by)

    def retry(self, *, by: str | None = None) -> None:
        """Run the failed step again."""
        self._check("retry")
        self.error_action = "retry"
        self._mark(by)

    def skip(self, *, by: str | None = None) -> None:
        """Skip the failed step and go on."""
        self._check("skip")
        self.error_action = "skip"
        self._mark(by)

    # ----- persistence ----------------------------------------------------------------------------
    def journal_decision(self) -> dict[str, Any]:
        """The resolution as journal data (what the engine applies on continue). (`decision()` is the
        older name; on an `ErrorRequirement`, `decision` is the documented "retry"/"skip" field.)"""
        if self.kind == EXECUTOR:
            return {"action": "executor", "requirements": [r.to_dict() for r in self.executor_requirements or []]}
        if self.kind == USER_INPUT and self.user_input is not None:
            return {"action": "input", "user_input": self.user_input}
        if self.kind == ROUTE_SELECTION:
            # selected_choices may have been set directly: the same check as select(), before anything is journaled
            self._check_routes(list(self.selected_choices or []))
            return {"action": "select", "choices": list(dict.fromkeys(self.selected_choices or []))}
        if self.kind == ERROR:
            return {"action": self.error_action}
        if self.confirmed:
            if self.edited_output is not None:
                return {"action": "edit", "output": to_jsonable(self.edited_output)}
            return {"action": "confirm"}
        # The requirement's on_reject (set at the pause from the primitive, and changeable before
        # resolving: `req.on_reject = "cancel"`) decides what this rejection does.
        return {"action": "reject", "feedback": self.rejection_feedback, "on_reject": self.on_reject.value}

    decision = journal_decision

    def expire(self, now: float) -> dict[str, Any]:
        """Mark this pause timed out and return the decision its `on_timeout` makes.

        No `on_timeout` means cancel. For user input, approve uses the fields' defaults, or rejects
        when a required field has none. For route selection, approve runs the router's selector.
        """
        self.status = "timed_out"
        self.timed_out = True
        self.resolved_at = now
        self.resolved_by = self.resolved_by or "timeout"
        on_timeout = self.on_timeout or OnTimeout.cancel
        if on_timeout is OnTimeout.cancel:
            return {
                "action": "cancel",
                "timed_out": True,
                "reason": f"Timed out after {self.timeout:g}s waiting for {self.kind.replace('_', ' ')} "
                f"at step '{self.step_name}'",
            }
        approve = on_timeout is OnTimeout.approve
        if self.kind == EXECUTOR:
            for req in self.executor_requirements or []:
                if req.is_resolved:
                    continue
                if approve and req.needs_confirmation:
                    req.confirm(by="timeout")
                else:
                    req.reject(note="No answer before the deadline", by="timeout")
            return {**self.journal_decision(), "timed_out": True}
        if self.kind == USER_INPUT and approve:
            defaults = {f.name: f.value for f in self.user_input_schema or []}
            if all(
                v is not None
                for f, v in zip(self.user_input_schema or [], defaults.values(), strict=True)
                if f.required
            ):
                self.user_input = defaults
                return {"action": "input", "user_input": to_jsonable(defaults), "timed_out": True}
            approve = False
        if self.kind == ROUTE_SELECTION:
            return {"action": "auto" if approve else "reject", "timed_out": True}
        if self.kind == ERROR:
            return {"action": "retry" if approve else "skip", "timed_out": True}
        return {"action": "confirm" if approve else "reject", "feedback": None, "timed_out": True}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the stored form (see `kern.run.stored`; unset (None) fields left out), with the
        reference API's keys beside it (`step_id`, `step_index`, the `requires_*` flags, the per-kind
        messages, `is_post_execution`, `timeout_at` as ISO 8601). `from_dict` reads it back."""
        return {**STEP_REQUIREMENT.dump(self), **self._documented_keys()}

    def _documented_keys(self) -> dict[str, Any]:
        keys: dict[str, Any] = {
            "step_id": self.step_id,
            "step_index": self.step_index,
            "requires_confirmation": self.requires_confirmation,
            "requires_user_input": self.requires_user_input,
            "requires_route_selection": self.requires_route_selection,
            "requires_output_review": self.requires_output_review,
            "is_post_execution": self.is_post_execution,
            "confirmation_message": self.confirmation_message,
            "user_input_message": self.user_input_message,
            "output_review_message": self.output_review_message,
            "timeout_at": self.timeout_at.isoformat() if self.timeout_at is not None else None,
        }
        if self.requires_executor_input:
            keys["requires_executor_input"] = True
        kept = {k: v for k, v in keys.items() if v is not None}
        if self.max_retries is None:  # written, or it would read back as the field's default
            kept["max_retries"] = None
        return kept

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepRequirement:
        """From `to_dict()` data (an error pause comes back as an `ErrorRequirement`), or from the
        reference API's form (flags instead of a `kind`)."""
        return STEP_REQUIREMENT.load(data)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        """The stored form: the fields (a derived step id is None: left out), plus a step index or error
        type given explicitly (`STORED_EXTRA_KEYS`); read back as an `ErrorRequirement` for an error
        pause, and from the reference API's form or a row stored before `step_output` was a `StepOutput`."""
        return custom_form(handler(source), load=_load_requirement)


# Keys a stored StepOutput always has (its None fields are left out): a `step_output` dict without them is
# the bare content of a row stored before step outputs were StepOutputs.
_STEP_OUTPUT_KEYS = frozenset(("success", "stop", "skipped", "step_type"))

# The subclass a stored pause of a kind loads as: `ErrorRequirement` for `error`. It subclasses
# StepRequirement, so this module cannot import it; `kern.run.error_requirement` adds itself here, and
# `kern.run`'s __init__ imports it, so it is always in place before anything is loaded.
LOADED_AS: dict[str, type[StepRequirement]] = {}


def _load_requirement(data: Any, load: core_schema.ValidatorFunctionWrapHandler) -> StepRequirement:
    if not isinstance(data, dict):
        return load(data)
    if "kind" not in data:  # the reference API's form: flags instead of a kind
        return _from_documented(data)
    output = data.get("step_output")
    bare = output is not None and not (isinstance(output, dict) and _STEP_OUTPUT_KEYS <= output.keys())
    req: StepRequirement = load({**data, "step_output": None} if bare else data)
    if bare:
        req.step_output = StepOutput(content=output, step_name=req.step_name, step_type=req.step_type)
    for key in StepRequirement.STORED_EXTRA_KEYS:
        if data.get(key) is not None:
            req.__dict__[key] = data[key]
    loaded_as = LOADED_AS.get(req.kind)
    if loaded_as is not None:
        req.__class__ = loaded_as  # the same fields; every error pause, stored ones from before included
    return req


def _from_documented(data: dict[str, Any]) -> StepRequirement:
    """A requirement from the reference API's dict form, through the documented constructor."""
    values = {k: v for k, v in data.items() if k in DOCUMENTED_KEYS}
    schema = data.get("user_input_schema")
    if schema is not None:
        values["user_input_schema"] = [
            f if isinstance(f, UserInputField) else UserInputField.from_dict(f) for f in schema
        ]
    if isinstance(data.get("step_output"), dict):
        values["step_output"] = StepOutput.from_dict(data["step_output"])
    if "requirement_id" in data:
        values["requirement_id"] = data["requirement_id"]
    if values.get("max_retries") is None:
        values.pop("max_retries", None)
    return StepRequirement(**values)


STEP_REQUIREMENT = StoredForm(StepRequirement)
_dataclass_init = StepRequirement.__init__


@functools.wraps(_dataclass_init)
def _init(self: StepRequirement, *args: Any, **kwargs: Any) -> None:
    """kern's fields, or the reference API's documented ones (`step_id`, `requires_confirmation=True`,
    `confirmation_message`, `step_index`, `timeout_at`, `is_post_execution`, ...)."""
    if (len(args) > 1 or "kind" in kwargs) and kwargs.keys().isdisjoint(DOCUMENTED_ONLY):
        _dataclass_init(self, *args, **kwargs)  # kern's own fields: the engine's and the store's path
        return
    after = documented_arguments(args, kwargs)
    _dataclass_init(self, *args, **kwargs)
    for name, value in after.items():
        setattr(self, name, value)


StepRequirement.__init__ = _init  # type: ignore[method-assign]
