"""Pauses, runs and decisions as Block Kit: pure functions, no I/O.

Every interactive element carries an opaque id only (a requirement id, or `<id>:<n>` for the n-th
tool call of an executor pause); everything else is read from the database when a person acts.

One module per job: `kit` (ids and building blocks), `card` (the run card), `pauses` (pause
messages), `decided` (the same once decided), `reminders` (reminders and escalations, and the line
that tells a starter how a run ended), `forms` (modals and reading them back), `guide` (help
and the intro in a new channel), `home` (the App Home tab), `text` (escaping and cutting text). Callers use
`from bot import blocks as ui`. Imports nothing of the bot's but itself: any layer may import it.

Text from people and models (inputs, outputs, errors quoting them, feedback, form values, tool arguments)
is passed in raw and escaped once, where it is put into markup, by `bot.blocks.text` (`escape`, `quote`,
`code_block`); every `text` the building blocks receive (`md`, `section`, `context`, a Card's status line)
is mrkdwn already, and is only cut (`clip`: never inside an escape or a mention), never escaped again.
"""

# ruff: noqa: F401 - the package re-exports its modules' names
from bot.blocks.card import Card, card_blocks
from bot.blocks.decided import Outcome, decided_blocks, outcome
from bot.blocks.forms import (
    MAX_QUESTIONS,
    approve_form,
    feedback_form,
    feedback_modal,
    feedback_summary,
    field_block_id,
    field_error,
    form_title,
    full_text_modal,
    info_modal,
    input_modal,
    loading_modal,
    modal,
    question_block_id,
    questions_text,
    read_feedback,
    read_inputs,
    text_modal,
)
from bot.blocks.guide import help_text, hint_text, intro_blocks
from bot.blocks.home import GRANT_REVOKE, HOME_PAGE, PAUSE_BLOCKS, home_view, run_line, turn_line
from bot.blocks.kit import (
    CONFIRM,
    HANDOVER,
    OPEN_APPROVE,
    OPEN_EDIT,
    OPEN_FEEDBACK,
    OPEN_INPUT,
    REJECT,
    RETRY,
    ROUTE_BLOCK,
    ROUTE_GO,
    ROUTE_PICK,
    RUN_CANCEL,
    RUN_SHORTCUT,
    RUN_STATUS,
    SKIP,
    TOOL_ALLOW_RUN,
    TOOL_ALLOW_WORKFLOW,
    TOOL_ANSWER,
    TOOL_INPUT,
    TOOL_NO,
    TOOL_OK,
    TOOL_RESULT,
    V_APPROVE,
    V_EDIT,
    V_FEEDBACK,
    V_HANDOVER,
    V_INFO,
    V_INPUT,
    V_START,
    V_START_PICK,
    V_TOOL_FEEDBACK,
    V_TOOL_INPUT,
    V_TOOL_NOTE,
    V_TOOL_RESULT,
    VIEW_FULL,
    Blocks,
    button,
    confirm_dialog,
    context,
    deadline_line,
    humanize,
    md,
    plain,
    reason_line,
    rejecting_cancels,
    retries_used_up,
    section,
    slack_time,
    stamp,
    who,
)
from bot.blocks.pauses import (
    MAX_SHOWN_CALLS,
    call_value,
    pause_blocks,
    read_call_value,
    review_text,
    shows_message,
    waiting_for,
)
from bot.blocks.reminders import ESCALATE, REMIND, reminder_blocks, reminder_decided_blocks, run_ended_text
from bot.blocks.start import (
    CHANNEL_BLOCK,
    WORKFLOW_BLOCK,
    first_block,
    form_errors,
    form_fields,
    form_summary,
    json_shape,
    picker_modal,
    read_picker,
    read_start,
    start_modal,
)
from bot.blocks.text import as_text, clip, escape, quote, shown, truncate, value_text

_MODULES = {"card", "decided", "forms", "guide", "home", "kit", "pauses", "reminders", "start"}
__all__ = [name for name in dir() if not name.startswith("_") and name not in _MODULES]
