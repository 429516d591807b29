"""Who is told about a pause, and how: the mentions a pause message carries, where it is posted, and who
gets a copy by DM. Configured per workflow (`BotWorkflow(notify=..., approvals_channel=...)`).
"""

from __future__ import annotations

from bot.config import CHANNEL_ID, SettingsError
from bot.policy import Approvers

NOTIFY = ("thread", "broadcast", "dm")


def check(name: str, notify: str, approvals_channel: str | None, approvers: Approvers) -> None:
    """Raise SettingsError (naming the field and the fix) for a `notify=` or `approvals_channel=` value
    the bot cannot act on."""
    if notify not in NOTIFY:
        choices = ", ".join(repr(n) for n in NOTIFY)
        raise SettingsError(f"Workflow {name!r}: notify={notify!r} is not one of {choices}; use one of those.")
    if notify == "dm" and not approvers.users and not approvers.anyone:
        raise SettingsError(
            f"Workflow {name!r}: notify='dm' sends a DM to each user in approvers.users, and it names none; "
            "list them in Approvers(users=(...)) or use notify='thread' or 'broadcast'."
        )
    if notify == "dm" and approvers.anyone and approvers.forbid_self_approval:
        raise SettingsError(
            f"Workflow {name!r}: notify='dm' with anyone answering sends the DM to the run's starter, who may "
            "not answer it (forbid_self_approval); name approvers in Approvers(users=(...)) or use notify='thread'."
        )
    if approvals_channel is not None and not CHANNEL_ID.match(approvals_channel):
        raise SettingsError(
            f"Workflow {name!r}: approvals_channel={approvals_channel!r} is not a channel id; give the id "
            "(C… or G…, from the channel's details in Slack), not its name."
        )


def mentions(approvers: Approvers, starter: str) -> str:
    """Whom a pause message mentions: the users and user groups who may answer it (only those in
    `approvers.notify`, when it is given), or the person who started the run when anyone may (and nobody
    is named)."""
    named = approvers.mentions()
    if not named and starter and approvers.notify is None:
        named = f"<@{starter}>"
    return named


def who_may_answer(approvers: Approvers, starter: str) -> str:
    """The "Who may answer" line, naming the starter when anyone may answer (so they are mentioned)."""
    described = approvers.describe()
    if approvers.anyone and starter and not approvers.forbid_self_approval:
        return f"{described} · <@{starter}> started this run"
    if not approvers.users and not approvers.groups and starter:
        return f"{described} · started by <@{starter}>"
    return described


def dm_recipients(notify: str, approvers: Approvers) -> list[str | None]:
    """Who gets the pause by DM: each user in `approvers.users` (of `approvers.notify`, when given), or
    (None) the run's starter when anyone may answer. Empty unless notify='dm'."""
    if notify != "dm":
        return []
    if approvers.notify is not None:  # only those to be told: a DM is a notification
        return [u for u in approvers.notify if u in approvers.users]
    return list(approvers.users) if approvers.users else [None]
