"""What the bot says about itself: `/kern help` (every command with an example, the workflows the person
may start) and the short intro it posts when it is added to a channel."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.blocks.kit import Blocks, context, section
from bot.blocks.text import SECTION_TEXT, clip, escape, truncate

# (usage, what it does, example arguments or None)
COMMANDS: tuple[tuple[str, str, str | None], ...] = (
    (
        "run <workflow> [input]",
        "start a run; its card is posted here and pauses go to its thread (no input: a form; no name: a picker)",
        "run {wf} some input",
    ),
    ("list", "the workflows you can start", None),
    ("status <run id>", "where a run is (the id on its card, or any 6 or more characters of it)", "status 3f2a9c"),
    ("cancel <run id>", "cancel a run you started or may answer", "cancel 3f2a9c"),
    ("help", "this help", None),
)
SHOWN_WORKFLOWS = 40


def commands_text(command: str, example_workflow: str) -> str:
    """Every command, each with what it does and an example."""
    lines = []
    for usage, what, example in COMMANDS:
        line = f"• `{command} {usage}`: {what}"
        if example:
            line += f", e.g. `{command} {example.format(wf=example_workflow)}`"
        lines.append(line)
    return "\n".join(lines)


def workflows_text(workflows: Sequence[tuple[str, str]]) -> str:
    """`• name: description` per workflow (both escaped)."""
    lines = [f"• `{escape(name)}`: {escape(truncate(desc, 300)) or '_no description_'}" for name, desc in workflows]
    more = len(workflows) - SHOWN_WORKFLOWS
    text = "\n".join(lines[:SHOWN_WORKFLOWS]) + (f"\n…and {more} more (`/kern list`)" if more > 0 else "")
    return clip(text, SECTION_TEXT - 40)


def help_text(command: str, workflows: Sequence[tuple[str, str]]) -> str:
    """`/kern help`: the commands with examples, then the workflows this person may start."""
    example = workflows[0][0] if workflows else "deploy"
    startable = workflows_text(workflows) if workflows else "_none: ask whoever runs kern-bot for access_"
    return (
        f"*{command}* starts kern workflows and asks people when one needs a decision.\n"
        f"{commands_text(command, example)}\n*Workflows you can start*\n{startable}"
    )


def intro_blocks(command: str, workflows: Sequence[tuple[str, str]]) -> tuple[str, Blocks]:
    """The message posted when the bot is added to a channel: what it does, the commands, the workflows."""
    example = workflows[0][0] if workflows else "deploy"
    blocks: Blocks = [
        section(
            ":wave: *Hi, I'm kern.* I run workflows started here and post each step that needs a person "
            "(an approval, a form, a review) in the run's thread, with buttons to answer it."
        ),
        section("*Commands*\n" + commands_text(command, example)),
    ]
    if workflows:
        blocks.append(section("*Workflows*\n" + workflows_text(workflows)))
    blocks.append(context(f"Who may start or answer each workflow is set per workflow; `{command} help` says more."))
    return f"Hi, I'm kern. Try {command} help.", blocks


HINT_ECHO = 200  # characters of the person's text repeated in a suggestion
RUN_ID = re.compile(r"^[0-9a-fA-F-]{6,36}$")


def meant_command(text: str, command: str, workflows: Sequence[str], *, addressed: bool = False) -> str | None:
    """The command a message reads as, typed without its slash: its arguments ("run deploy api"), or None.
    Read as one: a message that starts with the command's name ("kern list", "kern deploy api"); "list" or
    "help" alone; "status"/"cancel" and a run id; "run" and a workflow; and, `addressed` to the bot (a
    mention, its DM), any command word or workflow first ("deploy api")."""
    words = text.split()
    named = bool(words) and words[0].lower().rstrip(":,") in (command.lstrip("/"), command)
    words = words[1:] if named else words
    first = words[0].lower() if words else ""
    loose = named or addressed
    if not words:
        return "help" if named else None
    if first in ("list", "help") and (loose or len(words) == 1):
        return first
    if first in ("status", "cancel") and (loose or (len(words) == 2 and RUN_ID.match(words[1]))):
        return " ".join(words)
    if first == "run" and (loose or (len(words) > 1 and words[1] in workflows)):
        return " ".join(words)
    if loose and words[0] in workflows:
        return "run " + " ".join(words)
    return None


def hint_text(command: str, text: str, workflows: Sequence[str], *, addressed: bool) -> str | None:
    """What the bot answers a message that is not a command (only its author sees it): the command it reads
    as (`meant_command`), else, when it is `addressed` to the bot (a mention, its DM), how to talk to it.
    None: a message between people, not for the bot."""
    words = text.split()
    addressed = addressed or (bool(words) and words[0].lower().rstrip(":,") in (command.lstrip("/"), command))
    meant = meant_command(text, command, workflows, addressed=addressed)
    if meant is not None:
        return f"Commands start with a slash: did you mean `{command} {escape(truncate(meant, HINT_ECHO))}`?"
    if not addressed:
        return None
    return (
        f"I answer to `{command}` commands: `{command} run <workflow>` starts one, `{command} list` lists them, "
        f"`{command} help` says more. Pauses are answered with the buttons on their messages."
    )
