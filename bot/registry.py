"""Which workflows `/kern run` may start, and the rules for answering them."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bot import notify
from bot.config import SettingsError
from bot.policy import ANYONE, CHANNEL_STARTER_AND_APPROVERS, STARTER_AND_APPROVERS, Approvers, Audience
from kern.db.base import BaseDb
from kern.run.requirement import StepRequirement
from kern.workflow import Step, Workflow
from kern.workflow.types import OnError

LOADING_TEXT = "Thinking..."  # an assistant thread's status while a turn works (`BotAgent(loading_text=...)`)
MAX_PROMPTS = 4  # suggested prompts Slack shows in an assistant thread (assistant.threads.setSuggestedPrompts)
# What an assistant thread offers when `BotAgent(suggested_prompts=...)` is not given.
DEFAULT_PROMPTS = [
    {"title": "What can you do?", "message": "What can you help me with?"},
    {"title": "Get started", "message": "Walk me through how to get started."},
]
# The default largest file shared with a conversation turn. Lower than the reference's 1 GB: a file's bytes are
# stored with the turn's run (so another process can take it over) and sent to the model within its limits.
MAX_FILE_SIZE = 10 * 1024 * 1024

# What a pause is about, in the author's words: (run, requirement) -> text, Block Kit blocks, or None.
TASK_DISPLAY_MODES = ("plan", "timeline")  # chat.startStream's task_display_mode
ContextRenderer = Callable[[Any, StepRequirement], Any]


@dataclass
class BotWorkflow:
    """A workflow as the bot offers it: its command name, a description, and who may do what.

    `approvers` may answer its pauses (`step_approvers` overrides them per step name). By default anyone
    may start it (`starters`); the person who started a run and its approvers may cancel it
    (`cancellers`); members of the run's channel, the starter and the approvers may read its output
    (`readers`). A tool call can be allowed for the rest of its run; with `standing_approval` (seconds or
    a timedelta) also for the whole workflow, for that long.

    Each pause message mentions who may answer. `notify` says how else they are told: "thread" (the
    pause is a reply in the run card's thread), "broadcast" (the reply is also shown in the channel) or
    "dm" (also a DM, with the same controls, to each user in `approvers.users`, or to the starter when
    anyone may answer). `approvals_channel` (a channel id) posts pause messages there instead, as
    top-level messages linking back to the run card.

    Every pause shows what it is about: the run's input, the last step's output, what a confirmed step runs.
    `context` (or, per step name, `step_context`) adds the author's own: a function `(run, requirement)`
    returning text (shown as written, escaped), Block Kit blocks (section, context, divider, header, image;
    at most 5), or None; it is called each time the pause is drawn (thread, DM copy, App Home), so keep it
    quick. `step_messages` words a step's question from the run's data instead of its kern message: a
    template (`"Ship {input[version]} to {session_state[env]}?"`, see `bot.blocks.about.template_values`)
    or a function `(run, requirement) -> str`. A renderer or template that fails is logged once and left
    out: the pause shows without it.

    `conversation` and `max_file_size` are set through `BotAgent` (see there): the entry answers mentions and
    DMs, and files shared with them are taken up to `max_file_size` bytes each (default 10 MB).
    """

    workflow: Workflow
    name: str = ""
    description: str = ""
    approvers: Approvers = field(default_factory=Approvers)
    starters: Audience = ANYONE
    cancellers: Audience = STARTER_AND_APPROVERS
    readers: Audience = CHANNEL_STARTER_AND_APPROVERS
    step_approvers: Mapping[str, Approvers] = field(default_factory=dict)
    standing_approval: float | timedelta | None = None
    notify: str = "thread"
    approvals_channel: str | None = None
    context: ContextRenderer | None = None
    step_context: Mapping[str, ContextRenderer] = field(default_factory=dict)
    step_messages: Mapping[str, str | ContextRenderer] = field(default_factory=dict)
    # Answers when the bot is mentioned or DMed (see `BotAgent`): a turn is a run whose answer is posted in
    # the thread, with no run card.
    conversation: bool = False
    # How it converses (set by `BotAgent`, which documents them; meaningless without `conversation`).
    suggested_prompts: list[dict[str, str]] | None = None
    loading_text: str = LOADING_TEXT
    resolve_user_identity: bool = False
    respond_to_other_apps: bool = False
    reply_to_mentions_only: bool = True
    # The largest file (bytes) a person may share with a conversation turn; larger ones are left out, and said.
    max_file_size: int = MAX_FILE_SIZE
    # A conversation's answer streams into its thread (see `BotAgent`); its task cards shown as a plan or a timeline.
    streaming: bool = True
    task_display_mode: str = "plan"

    def __post_init__(self) -> None:
        self.name = self.name or self.workflow.name
        self.description = self.description or (self.workflow.description or "")
        if isinstance(self.standing_approval, timedelta):
            self.standing_approval = self.standing_approval.total_seconds()
        if self.standing_approval is not None and not (
            isinstance(self.standing_approval, (int, float)) and self.standing_approval > 0
        ):
            raise SettingsError(
                f"BotWorkflow {self.name!r}: standing_approval={self.standing_approval!r} must be a positive number "
                "of seconds or a timedelta (how long 'Always allow … in this workflow' lasts)."
            )
        known = set(_step_names(self.workflow.steps))
        unknown = sorted(set(self.step_approvers) - known)
        if unknown:
            raise SettingsError(
                f"BotWorkflow {self.name!r}: step_approvers names no step {', '.join(map(repr, unknown))}; "
                f"its steps are {', '.join(map(repr, sorted(known)))}."
            )
        if isinstance(self.max_file_size, bool) or not isinstance(self.max_file_size, int) or self.max_file_size < 1:
            raise SettingsError(
                f"BotWorkflow {self.name!r}: max_file_size={self.max_file_size!r} must be a positive number of bytes."
            )
        notify.check(self.name, self.notify, self.approvals_channel, self.approvers)
        self.suggested_prompts = check_prompts(self.name, self.suggested_prompts)
        if not isinstance(self.loading_text, str) or not self.loading_text.strip():
            raise SettingsError(
                f"BotAgent {self.name!r}: loading_text must be a non-empty text, got {self.loading_text!r}."
            )
        if self.task_display_mode not in TASK_DISPLAY_MODES:
            raise SettingsError(
                f"BotWorkflow {self.name!r}: task_display_mode={self.task_display_mode!r} must be one of "
                f"{', '.join(map(repr, TASK_DISPLAY_MODES))}."
            )
        self._check_context()
        self.check_answerable()

    @property
    def standing_seconds(self) -> float | None:
        """How long a workflow-wide grant lasts, in seconds (`standing_approval`; a timedelta converted)."""
        lasts = self.standing_approval
        return lasts.total_seconds() if isinstance(lasts, timedelta) else lasts

    @property
    def has_timers(self) -> bool:
        """True if any of its pauses gets reminders or an escalation (so decisions have timers to cancel)."""
        rules = [self.approvers, *self.step_approvers.values()]
        return any(r.remind_after or r.escalate_after for r in rules)

    @property
    def waits_on_approvals(self) -> bool:
        """True if an agent or team of its steps has an `@approval` tool whose record must be resolved
        (type "required"): its tool-call pauses can be decided through kern's approvals API too."""
        return any(
            getattr(tool, "approval_type", None) == "required"
            for runner in _agents_in(self.workflow.steps)
            for tool in getattr(runner, "tools", None) or []
        )

    def approvers_for(self, step_name: str | None) -> Approvers:
        """Who may answer a pause of the step named `step_name`: its own rules, or the workflow's."""
        return self.step_approvers.get(step_name or "", self.approvers)

    def pausing_rules(self) -> list[tuple[str, Approvers, int]]:
        """(step name, its rules, how many different people a pause of it needs) for every step that can
        pause: one with a human review setting, `on_error="pause"`, or an agent or team (tool calls)."""
        found = []
        for name, votes in _pausing_steps(self.workflow.steps):
            rules = self.approvers_for(name)
            found.append((name, rules, rules.required if votes else 1))
        return found

    def check_answerable(self) -> None:
        """Refuse (SettingsError, one line) rules under which a pause of a step could never be answered,
        whoever starts the run: fewer people than approvals needed, or one approver who may not answer
        their own runs and is the only one who may start them. Rules whose answer depends on who starts a
        run, or on Slack (groups, channel members), are checked when a run starts (`Access.may_start`)."""
        starters = self._fixed_starters()
        for step, rules, need in self.pausing_rules():
            people = rules.fixed_people()
            if people is None:
                continue
            problem = rules.shortfall(people, None, need, mention=False)
            if problem is None and starters:
                each = [rules.shortfall(people, starter, need, mention=False) for starter in sorted(starters)]
                if all(each):  # whoever of those who may start it starts a run, nobody could answer
                    problem = f"{each[0]}, and only {', '.join(sorted(starters))} may start it"
            if problem is not None:
                raise SettingsError(
                    f"BotWorkflow {self.name!r}, step {step!r}: nobody could answer its pauses: {problem}. "
                    "Fix: name more approvers (users, groups or channel_members), lower `required`, "
                    "or drop forbid_self_approval."
                )

    def _check_context(self) -> None:
        known = set(_step_names(self.workflow.steps))
        for name, given in (("step_context", self.step_context), ("step_messages", self.step_messages)):
            unknown = sorted(set(given) - known)
            if unknown:
                raise SettingsError(
                    f"BotWorkflow {self.name!r}: {name} names no step {', '.join(map(repr, unknown))}; "
                    f"its steps are {', '.join(map(repr, sorted(known)))}."
                )
            bad = sorted(
                step
                for step, spec in given.items()
                if not (callable(spec) or (name == "step_messages" and isinstance(spec, str)))
            )
            if bad:
                raise SettingsError(
                    f"BotWorkflow {self.name!r}: {name}[{bad[0]!r}] must be a function (run, requirement)"
                    + (" or a template string." if name == "step_messages" else ".")
                )
        if self.context is not None and not callable(self.context):
            raise SettingsError(f"BotWorkflow {self.name!r}: context must be a function (run, requirement).")

    def context_for(self, step_name: str | None) -> ContextRenderer | None:
        """The context renderer of a pause of the step named `step_name`: its own, or the workflow's."""
        return self.step_context.get(step_name or "", self.context)

    def _fixed_starters(self) -> frozenset[str] | None:
        """Everyone who may start a run, when that is a fixed list of users (else None)."""
        who = self.starters
        if who.anyone or who.groups or who.channel_members:
            return None
        people = set(who.users)
        if who.approvers:
            more = self.approvers.fixed_people()
            if more is None:
                return None
            people |= more
        return frozenset(people) or None


def BotAgent(
    agent: Any,
    *,
    name: str = "",
    suggested_prompts: list[dict[str, str]] | None = None,
    loading_text: str = LOADING_TEXT,
    resolve_user_identity: bool = False,
    respond_to_other_apps: bool = False,
    reply_to_mentions_only: bool = True,
    **rules: Any,
) -> BotWorkflow:
    """An agent, team or workflow that answers when the bot is mentioned in a channel (in the mention's
    thread), DMed, or written to in Slack's assistant pane: a `BotWorkflow` with `conversation=True`. An
    agent or team is run as a one-step workflow (its step named after it); a `Workflow` is run as it is.
    Every message of a thread is a turn of one kern session (team, channel and thread), so a follow-up sees
    the turns before it (an agent's or team's `add_history_to_context` is switched on). `rules` are
    BotWorkflow's: who may start a turn (`starters`), who answers its pauses (`approvers`,
    `step_approvers`), `notify`, `standing_approval`, ...: every pause of a turn (a tool call, a workflow
    step's confirmation, form, review, route, error) shows in the thread under them. At most one entry of a
    registry converses.

    - `suggested_prompts`: the prompts offered when someone opens an assistant thread, a list of at most 4
      `{"title": ..., "message": ...}` (what the button says, what it sends); None offers DEFAULT_PROMPTS.
    - `loading_text`: the assistant thread's status while a turn works ("Thinking..."); Slack clears it
      when the answer (or a pause) is posted.
    - `resolve_user_identity`: look the person up (`users.info`, needs `users:read` and
      `users:read.email`) and use their email as the run's `user_id` (else, or when the lookup fails, their
      Slack id), and give the agent their display name and the channel with each message.
    - `respond_to_other_apps`: answer messages other apps and bots post (the bot's own never).
    - `reply_to_mentions_only`: in channels, only a message that mentions the bot starts a turn (False:
      every message in a channel the bot is in does). DMs and assistant threads need no mention.
    - `max_file_size`: the largest file (bytes, default 10 MB) shared with a message that reaches the agent.
      Files shared with a message reach it as `kern.media` objects (`Image`, `File`, `Audio`); a file too
      large, of a type the agent cannot read, or that could not be downloaded is left out, and the thread is
      told. Images and files the agent's tools make (`ToolResult(images=..., files=...)`) are uploaded to the
      thread after the answer.

    - `streaming` (default True): the answer streams into the thread as the agent writes it (Slack's chat
      streaming), with a task card for each tool call and team member asked, shown together as a plan or
      one by one (`task_display_mode`: "plan", the default, or "timeline"); an answer longer than a message
      continues in the next. With `streaming=False` the answer is posted whole when the turn ends.

    Raises SettingsError (one line naming the setting) for malformed `suggested_prompts`, `max_file_size` or
    `task_display_mode`.
    """
    if isinstance(agent, Workflow):
        workflow = agent
    else:
        agent.add_history_to_context = True
        as_team = getattr(agent, "kind", "") == "team"
        label = agent.name or ("team" if as_team else "agent")
        step = Step(name=label, team=agent) if as_team else Step(name=label, agent=agent)
        description = getattr(agent, "description", None) or ""
        workflow = Workflow(name=name or label, description=description, steps=[step])
    return BotWorkflow(
        workflow,
        name=name,
        conversation=True,
        suggested_prompts=suggested_prompts,
        loading_text=loading_text,
        resolve_user_identity=resolve_user_identity,
        respond_to_other_apps=respond_to_other_apps,
        reply_to_mentions_only=reply_to_mentions_only,
        **rules,
    )


def check_prompts(name: str, prompts: Any) -> list[dict[str, str]] | None:
    """`suggested_prompts` as given, checked as Slack's assistant.threads.setSuggestedPrompts takes them (at
    most MAX_PROMPTS, each a non-empty `title` and `message`); raises SettingsError naming the bad one."""
    if prompts is None:
        return None
    where = f"BotAgent {name!r}: suggested_prompts"
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise SettingsError(f"{where} must be a non-empty list of {{'title': ..., 'message': ...}}, got {prompts!r}.")
    if len(prompts) > MAX_PROMPTS:
        raise SettingsError(f"{where} has {len(prompts)} prompts; Slack shows at most {MAX_PROMPTS}.")
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, Mapping):
            raise SettingsError(f"{where}[{i}] must be a dict with 'title' and 'message', got {prompt!r}.")
        for key in ("title", "message"):
            if not isinstance(prompt.get(key), str) or not prompt[key].strip():
                raise SettingsError(f"{where}[{i}] needs a non-empty '{key}' (text), got {prompt.get(key)!r}.")
        extra = sorted(set(prompt) - {"title", "message"})
        if extra:
            unknown = ", ".join(map(repr, extra))
            raise SettingsError(f"{where}[{i}] has unknown keys {unknown}; use 'title' and 'message'.")
    return [{"title": p["title"], "message": p["message"]} for p in prompts]


def _agents_in(nodes: Iterable[Any]) -> Iterable[Any]:
    for node in nodes:
        for attr in ("agent", "team"):
            runner = getattr(node, attr, None)
            if runner is not None:
                yield runner
                yield from getattr(runner, "members", [])
        for attr in ("steps", "else_steps", "choices"):
            yield from _agents_in(getattr(node, attr, None) or [])


def _pausing_steps(nodes: Iterable[Any]) -> Iterable[tuple[str, bool]]:
    """(name, whether its pauses can be decided by votes) of every named node that can pause, at any depth:
    confirmations and reviews take votes (N of M); inputs, routes, errors and tool calls one answer."""
    for node in nodes:
        review = getattr(node, "human_review", None)
        votes = review is not None and bool(
            review.requires_confirmation or review.requires_output_review or review.requires_iteration_review
        )
        asks = review is not None and (votes or review.requires_user_input or review.on_error == OnError.pause)
        tools = getattr(node, "agent", None) is not None or getattr(node, "team", None) is not None
        if getattr(node, "name", None) and (asks or tools):
            yield node.name, votes
        for attr in ("steps", "else_steps", "choices"):
            yield from _pausing_steps(getattr(node, attr, None) or [])


def _step_names(nodes: Iterable[Any]) -> Iterable[str]:
    for node in nodes:
        if getattr(node, "name", None):
            yield node.name
        for attr in ("steps", "else_steps", "choices"):
            yield from _step_names(getattr(node, attr, None) or [])


def bind(entry: BotWorkflow, db: BaseDb) -> BotWorkflow:
    """Keep every run (workflow, agents, team members) in the bot's database."""
    entry.workflow.db = db
    for runner in _agents_in(entry.workflow.steps):
        runner.db = db
    return entry


class Registry:
    """Workflows by command name."""

    def __init__(self, entries: Iterable[BotWorkflow], db: BaseDb) -> None:
        self.db = db
        self.entries: dict[str, BotWorkflow] = {}
        for entry in entries:
            if entry.name in self.entries:
                raise SettingsError(f"Two workflows are named {entry.name!r}; names must be unique.")
            self.entries[entry.name] = bind(entry, db)
        talking = [e.name for e in self.entries.values() if e.conversation]
        if len(talking) > 1:
            raise SettingsError(
                f"Workflows {', '.join(map(repr, talking))} all have conversation=True; "
                "one entry answers mentions and DMs."
            )

    @property
    def conversational(self) -> BotWorkflow | None:
        """The entry that answers mentions and DMs (`BotAgent`), if any."""
        return next((e for e in self.entries.values() if e.conversation), None)

    def get(self, name: str) -> BotWorkflow | None:
        return self.entries.get(name)

    def by_workflow_name(self, workflow_name: str | None) -> BotWorkflow | None:
        for entry in self.entries.values():
            if entry.workflow.name == workflow_name:
                return entry
        return None

    @property
    def workflows(self) -> list[Workflow]:
        return [e.workflow for e in self.entries.values()]


def coerce_entries(value: Any, source: str) -> list[BotWorkflow]:
    """A list or dict of Workflow / BotWorkflow as registry entries."""
    items: Iterable[tuple[str | None, Any]]
    if isinstance(value, Mapping):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = ((None, v) for v in value)
    else:
        raise SettingsError(
            f"KERN_WORKFLOWS={source} must name a list or dict of Workflow objects, got {type(value).__name__}."
        )
    entries = []
    for key, item in items:
        if isinstance(item, Workflow):
            item = BotWorkflow(item)
        if not isinstance(item, BotWorkflow):
            raise SettingsError(f"KERN_WORKFLOWS={source}: {item!r} is not a Workflow or BotWorkflow.")
        if key:
            item.name = str(key)
        entries.append(item)
    if not entries:
        raise SettingsError(f"KERN_WORKFLOWS={source} names no workflows.")
    return entries


EXAMPLES = "bot.examples"  # the workflows served when KERN_WORKFLOWS is not set


def load_registry(spec: str | None, db: BaseDb, *, scripted_model_url: str | None = None) -> Registry:
    """The workflows `spec` ("package.module:attribute") names, or the bundled examples (their agent
    example on the scripted model at `scripted_model_url` when OPENAI_BASE_URL is not set)."""
    if not spec:
        # The bundled examples are a workflows module like any KERN_WORKFLOWS names, loaded by name: they
        # import this module (BotWorkflow), and this module does not import them.
        examples = importlib.import_module(EXAMPLES)
        return Registry(examples.example_workflows(scripted_model_url), db)
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SettingsError(f"KERN_WORKFLOWS={spec}: cannot import {module_name!r} ({exc}).") from exc
    try:
        value = getattr(module, attribute)
    except AttributeError:
        raise SettingsError(f"KERN_WORKFLOWS={spec}: module {module_name!r} has no attribute {attribute!r}.") from None
    if callable(value) and not isinstance(value, Workflow):
        value = value()
    return Registry(coerce_entries(value, spec), db)
