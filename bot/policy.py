"""Who may answer a workflow's pauses."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Approvers:
    """Per workflow: Slack user ids, user group ids, or anyone in the channel (the default).

    With `users` or `groups` set, only those people may answer; `channel_members=True` adds everyone in
    the run's channel. `forbid_self_approval` stops the person who started a run from answering it.
    """

    users: tuple[str, ...] = field(default_factory=tuple)
    groups: tuple[str, ...] = field(default_factory=tuple)
    channel_members: bool = False
    forbid_self_approval: bool = False

    @property
    def anyone(self) -> bool:
        return not self.users and not self.groups and not self.channel_members

    def describe(self) -> str:
        parts = [f"<@{u}>" for u in self.users] + [f"<!subteam^{g}>" for g in self.groups]
        if self.channel_members:
            parts.append("members of this channel")
        who = ", ".join(parts) if parts else "anyone"
        return who + (" (not the person who started the run)" if self.forbid_self_approval else "")
