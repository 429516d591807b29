"""Making arbitrary text safe for Slack: escaping and truncation within Block Kit's limits."""

from __future__ import annotations

import json
import re
from typing import Any

# Block Kit limits the renderer stays within (SLACK.md, section 2).
SECTION_TEXT = 3000
FIELD_TEXT = 2000
HEADER_TEXT = 150
BUTTON_TEXT = 75
OPTION_TEXT = 75
OPTION_VALUE = 75
MODAL_TITLE = 24
CONTEXT_TEXT = 2000
INPUT_LABEL = 2000
INPUT_HINT = 2000
PLACEHOLDER = 150
PRIVATE_METADATA = 3000
TEXT_INPUT_MAX = 3000
MESSAGE_TEXT = 3000  # the notification fallback; Slack truncates at 40k, we keep it short
MESSAGE_BLOCK_TEXT_BUDGET = 10000  # the undocumented ~12k cumulative limit, with room to spare
OUTPUT_PREVIEW = 2500


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn requires escaped (`&`, `<`, `>`)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_MENTION = re.compile(r"&lt;@([UW][A-Z0-9]+)&gt;")


def escape_keeping_mentions(text: str) -> str:
    """`escape(text)`, except that user mentions (`<@U123>`) stay mentions (kern's own texts carry them,
    e.g. "Cancelled by <@U123>"); nothing else can form a link."""
    return _MENTION.sub(r"<@\1>", escape(text))


def unseen(given: str) -> str:
    """The one line for a run that does not exist and for one the person may not see (bot/access.py): it
    tells them nothing about which."""
    return f"No run `{escape(given.strip().strip('`')[:64])}` that you may see."


def truncate(text: str, limit: int, marker: str = "…") -> str:
    """`text` cut to at most `limit` characters, ending with `marker` when cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(marker))] + marker


def as_text(value: Any) -> str:
    """Any output or argument as readable text (JSON for structures)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def code_block(value: Any, limit: int) -> str:
    """`value` in a mrkdwn code block (no formatting inside), escaped and cut to fit `limit`."""
    body = escape(as_text(value)).replace("```", "`\u200b``")
    return "```" + truncate(body, limit - 6) + "```"


def quote(value: Any, limit: int) -> str:
    """User text shown as written inside mrkdwn.

    mrkdwn has no escape for `*`, `_`, `~` or backticks, so text that contains them goes into a code
    span (a code block if it spans lines), where Slack applies no formatting; other text stays plain.
    """
    text = as_text(value)
    if not any(marker in text for marker in "*_~`"):
        return truncate(escape(text), limit)
    if "\n" in text:
        return code_block(text, limit)
    body = escape(text).replace("`", "\u02cb")  # a code span cannot contain a backtick
    return "`" + truncate(body, limit - 2) + "`"
