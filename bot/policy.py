"""Who may answer a workflow's pauses."""

from __future__ import annotations

from dataclasses import dataclass, field

from kern.run import requirement as kinds

# The pauses people vote on: those resolved by approving or rejecting. Edits and form inputs are answers.
VOTING_KINDS = (kinds.CONFIRMATION, kinds.OUTPUT_REVIEW, kinds.ITERATION_REVIEW)


@dataclass(frozen=True)
class Approvers:
    """Per workflow (or per step, through `BotWorkflow.step_approvers`): Slack user ids, user group ids,
    or anyone in the channel (the default).

    With `users` or `groups` set, only those people may answer; `channel_members=True` adds everyone in
    the run's channel. `forbid_self_approval` stops the person who started a run from answering it (nor
    can a hand-over or a standing approval let them).

    N of M: with `required=2`, a confirmation or a review is approved once two different allowed people
    have approved it; one reject rejects it, unless `reject_required` asks for more. Each vote is recorded
    once per person (and in kern's audit log); a hand-over passes its giver's vote, it adds none. Edits,
    form inputs, route choices, error decisions and tool calls take one person's answer: they are
    answers, not votes.
    """

    users: tuple[str, ...] = field(default_factory=tuple)
    groups: tuple[str, ...] = field(default_factory=tuple)
    channel_members: bool = False
    forbid_self_approval: bool = False
    required: int = 1
    reject_required: int = 1
    notify: tuple[str, ...] | None = None
    remind_after: float | None = None
    max_reminders: int = 3
    escalate_after: float | None = None
    escalate_to: Approvers | None = None

    def __post_init__(self) -> None:
        for name in ("required", "reject_required", "max_reminders"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "max_reminders" else 1):
                least = 0 if name == "max_reminders" else 1
                raise ValueError(f"Approvers({name}={value!r}): give a whole number, at least {least}.")
        for name in ("users", "groups", "notify"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise ValueError(f"Approvers({name}={value!r}): give a tuple of ids, e.g. ({value!r},).")
            if value is not None:
                object.__setattr__(self, name, tuple(value))
        for name in ("remind_after", "escalate_after"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0):
                raise ValueError(f"Approvers({name}={value!r}): give a number of seconds above 0.")
        if (self.escalate_after is None) != (self.escalate_to is None):
            raise ValueError(
                "Approvers: escalate_after and escalate_to go together (after how many seconds, to whom); "
                f"got escalate_after={self.escalate_after!r}, escalate_to={self.escalate_to!r}."
            )
        unknown = [who for who in self.notify or () if who not in self.users and who not in self.groups]
        if unknown:
            raise ValueError(
                f"Approvers(notify=...): {', '.join(unknown)} may not answer; notify names a subset of users "
                "and groups (those mentioned; the others may still answer)."
            )

    def mentions(self) -> str:
        """Who a pause mentions: `notify` if given, else every listed user and group ("" if none)."""
        ids = self.notify if self.notify is not None else self.users + self.groups
        return " ".join(f"<!subteam^{i}>" if i in self.groups else f"<@{i}>" for i in ids)

    @property
    def anyone(self) -> bool:
        return not self.users and not self.groups and not self.channel_members

    @property
    def votes(self) -> bool:
        """True when approving or rejecting takes more than one person (`required` / `reject_required`)."""
        return self.required > 1 or self.reject_required > 1

    def takes_votes(self, kind: str) -> bool:
        """True when a pause of this kind (`StepRequirement.kind`) is decided by several people's votes."""
        return self.votes and kind in VOTING_KINDS

    def fixed_people(self) -> frozenset[str] | None:
        """Everyone who may ever answer under these rules, escalation included, when that is a fixed list of
        users; None when a group, a channel or "anyone" makes it a question for Slack (asked at start)."""
        if self.groups or self.channel_members or self.anyone:
            return None
        people = set(self.users)
        if self.escalate_to is not None:
            more = self.escalate_to.fixed_people()
            if more is None:
                return None
            people |= more
        return frozenset(people)

    def shortfall(self, people: frozenset[str], starter: str | None, need: int, mention: bool = True) -> str | None:
        """Why a pause under these rules could have nobody to answer it when `people` are all who may (and
        `starter` started the run; None: not known), needing `need` different people: the problem, or None.
        `mention`: name people as Slack mentions (else by id, for a log line)."""
        left = people - {starter} if self.forbid_self_approval and starter is not None else people
        if len(left) >= need:
            return None
        if need > 1:
            some = f"{len(left)} {'person' if len(left) == 1 else 'people'}"
            return f"it needs {need} approvals and only {some} may give one"
        if left != people:
            who = f"<@{starter}>" if mention else starter
            return f"its only approver, {who}, may not answer runs they start (forbid_self_approval)"
        return "nobody may answer it"

    def describe(self) -> str:
        parts = [f"<@{u}>" for u in self.users] + [f"<!subteam^{g}>" for g in self.groups]
        if self.channel_members:
            parts.append("members of this channel")
        who = either(parts) if parts else "anyone"
        if self.votes:
            who += f" ({self.required} approvals needed" + (
                f", {self.reject_required} rejections to reject)" if self.reject_required > 1 else ")"
            )
        return who + (" (not the person who started the run)" if self.forbid_self_approval else "")


def either(parts: list[str]) -> str:
    """Alternatives as a sentence says them: "a", "a or b", "a, b or c"."""
    return ", ".join(parts[:-1]) + " or " + parts[-1] if len(parts) > 1 else "".join(parts)


@dataclass(frozen=True)
class Audience:
    """Who may do one thing with a workflow's runs (start, cancel or read them).

    Anyone listed qualifies: `users`, members of `groups`, members of the run's channel
    (`channel_members`; for starting, the channel the command is typed in), the person who started the
    run (`starter`), and those who may answer its pauses (`approvers`, per the workflow's `Approvers`).
    `anyone=True` lets everybody.
    """

    anyone: bool = False
    users: tuple[str, ...] = field(default_factory=tuple)
    groups: tuple[str, ...] = field(default_factory=tuple)
    channel_members: bool = False
    starter: bool = False
    approvers: bool = False

    def describe(self, approvers: Approvers) -> str:
        if self.anyone or (self.approvers and approvers.anyone):
            return "anyone"
        parts = [f"<@{u}>" for u in self.users] + [f"<!subteam^{g}>" for g in self.groups]
        if self.starter:
            parts.append("the person who started the run")
        if self.approvers:
            parts.append(f"those who may answer it ({approvers.describe()})")
        if self.channel_members:
            parts.append("members of the run's channel")
        return either(parts) or "nobody"


ANYONE = Audience(anyone=True)
STARTER_AND_APPROVERS = Audience(starter=True, approvers=True)
CHANNEL_STARTER_AND_APPROVERS = Audience(channel_members=True, starter=True, approvers=True)
