"""What the bot says about itself: `/kern help` (every command with an example, the workflows the person
may start) and the short intro it posts when it is added to a channel."""

from __future__ import annotations

from collections.abc import Sequence

from bot.blocks.kit import Blocks, context, section
from bot.text import SECTION_TEXT, clip, escape, truncate

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
