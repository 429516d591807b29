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
    """The one line for a run that does not exist and for one the person may not see (bot/approvals/access.py): it
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


def cut(text: str, limit: int) -> tuple[str, int]:
    """The longest head of raw `text` whose escaped form fits in `limit` characters, and how many characters
    of `text` are left out. Text is cut on its own characters before it is escaped, so a cut never falls
    inside an escape (`&l…`)."""
    if len(text) * 5 <= limit or len(escape(text)) <= limit:
        return text, 0
    size = 0
    for index, char in enumerate(text):
        size += len(escape(char))
        if size > limit:
            return text[:index], len(text) - index
    return text, 0


def more(left: int) -> str:
    """What a preview says about the characters it leaves out: " … (1,234 more characters)"."""
    if left <= 0:
        return ""
    return f" … ({left:,} more character{'s' if left != 1 else ''})"


MORE_ROOM = len(more(10**9))  # the longest `more` line: kept free when a preview is cut


def _fit(text: str, room: int) -> tuple[str, int]:
    """`cut`, keeping room for the `more` line when the text does not fit whole."""
    if len(text) * 5 <= room or len(escape(text)) <= room:
        return text, 0
    return cut(text, max(0, room - MORE_ROOM))


def fences(text: str) -> bool:
    """Whether `text` can be shown as written inside a mrkdwn code block (```…```): mrkdwn has no escape for
    a backtick, and a run of three ends the block early."""
    return "```" not in text


def code_block(value: Any, limit: int) -> str:
    """`value` in a mrkdwn code block (no formatting inside), escaped and cut to fit `limit` on its own
    characters, a cut one followed by "… (N more characters)". A backtick at either end is kept apart from
    the fence by a space. Text a code block cannot hold as written (see `fences`) is given escaped but
    unfenced: where a block can, show it with `shown` (plain_text)."""
    text = as_text(value)
    head, left = _fit(text, limit - 8)
    if not fences(head):
        return escape(head) + more(left)
    body = escape(head)
    body = (" " if body.startswith("`") else "") + body + (" " if body.endswith("`") else "")
    return "```" + body + "```" + more(left)


def quote(value: Any, limit: int) -> str:
    """Text from a person or a model shown as written inside mrkdwn, escaped and cut to fit `limit`.

    mrkdwn has no escape for `*`, `_`, `~` or backticks, so text that contains them goes into a code
    span, or a code block if it spans lines or holds a backtick (where Slack applies no formatting); other
    text stays plain. The characters themselves are never changed.
    """
    text = as_text(value)
    if not any(marker in text for marker in "*_~`"):
        head, left = _fit(text, limit)
        return escape(head) + more(left)
    if "\n" in text or "`" in text:
        return code_block(text, limit)
    head, left = _fit(text, limit - 2)
    return "`" + escape(head) + "`" + more(left)


def shown(value: Any, limit: int, label: str = "", *, block: bool = False, icon: str = "") -> dict[str, Any]:
    """A text object showing `value` (text from a person or a model) exactly as written, under the bot's
    `label` (raw text, shown bold after the emoji `icon`): mrkdwn, with the value quoted (`quote`; `block`:
    always a code block), or, where mrkdwn cannot hold it as written (a run of three backticks, a backtick at
    the start or the end: `fences`), plain_text, which Slack shows as given (no emoji either). Cut to `limit`
    with "… (N more characters)"; an empty value reads "_empty_"."""
    text = as_text(value)
    head = f"{icon + ' ' if icon else ''}*{escape(label)}*\n" if label else ""
    if fences(text):
        room = limit - len(head)
        body = code_block(text, room) if block or "\n" in text else quote(text, room)
        return {"type": "mrkdwn", "text": head + (body or "_empty_")}
    top = f"{label}\n" if label else ""
    kept = limit - len(top) - (MORE_ROOM if len(top) + len(text) > limit else 0)
    return {"type": "plain_text", "text": top + text[:kept] + more(len(text) - kept), "emoji": False}


def value_text(value: Any) -> str:
    """A value a person gave in a form as they would say it: a checkbox "Yes" or "No", lists comma-separated,
    anything else as text."""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value):
        return ", ".join(str(v) for v in value)
    return as_text(value)


def describe_duration(seconds: float) -> str:
    """ "8 h", "30 min", "2 d": how long a workflow-wide grant lasts, for its button."""
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{int(seconds // 86400)} d"
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    return f"{max(1, round(seconds / 60))} min"
