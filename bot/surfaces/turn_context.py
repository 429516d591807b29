"""What the agent is told about a turn besides the person's words: who wrote (with
`BotAgent(resolve_user_identity=True)`: their display name and email), where (the conversation's channel),
and in an assistant thread the channel the person is looking at.

kern hands a step's agent its input as the user message, and nothing else of the run (`additional_data`
stays with the workflow, `dependencies` go to tools only): so the facts travel in the turn's user message, in
a block after the person's words, as the reference framework's `add_dependencies_to_context` puts them. They
stay in the session's history with the message they came with. The run card keeps the person's words alone.
"""

from __future__ import annotations

from bot.slack.identity import Person

OPEN = "<slack_context>"
CLOSE = "</slack_context>"


def facts(person: Person | None, channel: str, viewing: str | None) -> dict[str, str]:
    """The facts of a turn: the person (when their identity was resolved), the conversation's channel (then
    too), the channel in view (in an assistant thread whose context names one)."""
    found: dict[str, str] = {}
    if person is not None:
        who = person.name or person.slack_id
        found["Person"] = who if person.user_id == person.slack_id else f"{who} ({person.user_id})"
        found["Slack user id"] = person.slack_id
        found["Conversation channel"] = channel
    if viewing:
        found["Channel the person is viewing"] = viewing
    return found


def with_context(text: str, found: dict[str, str]) -> str:
    """`text` as the agent gets it: unchanged without facts, else followed by a block listing them."""
    if not found:
        return text
    lines = "\n".join(f"{key}: {value}" for key, value in found.items())
    return f"{text}\n\n{OPEN}\n{lines}\n{CLOSE}"
