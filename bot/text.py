"""Making text from people and models safe for Slack: the one place it is escaped for mrkdwn, and cut to
Block Kit's limits without breaking an escape or a mention."""

from __future__ import annotations

import json
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
    """Text from a person or a model, made safe for mrkdwn (message text, section and context text).

    Slack asks for exactly three characters to be escaped (`&`, `<`, `>`); that also takes the power from
    control sequences in the text (`<!channel>`, `<!here>`, `<@U123>`, `<#C1>`, links). Nothing else is
    changed: backticks and formatting characters stay as written. Escape raw text once, where it is put
    into markup (`quote`, `code_block`, or an f-string naming it); plain_text fields take it unescaped.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unseen(given: str) -> str:
    """The one line for a run that does not exist and for one the person may not see (bot/access.py): it
    tells them nothing about which."""
    return f"No run `{escape(given.strip().strip('`')[:64])}` that you may see."


def truncate(text: str, limit: int, marker: str = "…") -> str:
    """Raw (or plain_text) `text` cut to at most `limit` characters, ending with `marker` when cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(marker))] + marker


_LONGEST_ENTITY = len("&amp;")


def clip(markup: str, limit: int, marker: str = "…") -> str:
    """mrkdwn `markup` cut to at most `limit` characters, ending with `marker` when cut, never inside an
    escape (`&l…`) or a control sequence (a mention, a link, a date): those are left out whole."""
    if len(markup) <= limit:
        return markup
    head = markup[: max(0, limit - len(marker))]
    amp = head.rfind("&", len(head) - _LONGEST_ENTITY + 1)
    if amp != -1 and ";" not in head[amp:]:
        head = head[:amp]
    opened = head.rfind("<")
    if opened != -1 and ">" not in head[opened:]:
        head = head[:opened]
    return head + marker


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


def escaped_parts(text: str, size: int) -> list[str]:
    """`text` escaped and split into parts of at most `size` characters, none split inside an escape."""
    parts: list[str] = []
    current: list[str] = []
    length = 0
    for char in text:
        shown = escape(char)
        if length + len(shown) > size:
            parts.append("".join(current))
            current, length = [], 0
        current.append(shown)
        length += len(shown)
    if current:
        parts.append("".join(current))
    return parts


def code_block(value: Any, limit: int) -> str:
    """`value` in a mrkdwn code block (no formatting inside), escaped and cut to fit `limit`."""
    return "```" + clip(escape(as_text(value)), limit - 6) + "```"


def quote(value: Any, limit: int) -> str:
    """Text from a person or a model shown as written inside mrkdwn, escaped and cut to fit `limit`.

    mrkdwn has no escape for `*`, `_`, `~` or backticks, so text that contains them goes into a code
    span, or a code block if it spans lines or holds a backtick (where Slack applies no formatting); other
    text stays plain. The characters themselves are never changed.
    """
    text = as_text(value)
    if not any(marker in text for marker in "*_~`"):
        return clip(escape(text), limit)
    if "\n" in text or "`" in text:
        return code_block(text, limit)
    return "`" + clip(escape(text), limit - 2) + "`"
