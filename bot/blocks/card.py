"""The run card: one message per run, updated as the run moves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.blocks.kit import RUN_CANCEL, RUN_STATUS, VIEW_FULL, Blocks, button, context, md, plain, section
from bot.text import FIELD_TEXT, HEADER_TEXT, OUTPUT_PREVIEW, SECTION_TEXT, as_text, code_block, escape, quote, truncate


@dataclass
class Card:
    """What the run card shows."""

    run_id: str
    workflow: str
    input: Any
    started_by: str
    status: str = "Starting…"
    output: Any = None
    error: str | None = None
    finished: bool = False
    steps: list[str] = field(default_factory=list)


def card_blocks(card: Card) -> tuple[str, Blocks]:
    """The run card: workflow, input, who started it, a status line, then the output or the error."""
    blocks: Blocks = [
        {"type": "header", "text": plain(f"Workflow: {card.workflow}", HEADER_TEXT)},
        {
            "type": "section",
            "fields": [
                md(f"*Input*\n{quote(card.input, FIELD_TEXT - 20) or '_none_'}", FIELD_TEXT),
                md(f"*Started by*\n<@{card.started_by}>", FIELD_TEXT),
            ],
        },
        context(f"{escape(card.status)}  ·  run `{card.run_id[:12]}`"),
    ]
    if card.error:
        blocks.append(section(":x: *Error*\n" + code_block(card.error, SECTION_TEXT - 20)))
    elif card.finished and card.output is not None:
        text = as_text(card.output)
        blocks.append(section("*Output*\n" + code_block(text, OUTPUT_PREVIEW)))
        if len(escape(text)) > OUTPUT_PREVIEW - 6:
            blocks.append(
                {"type": "actions", "elements": [button("View full output", VIEW_FULL, f"run:{card.run_id}")]}
            )
    if not card.finished:
        confirm = {
            "title": plain("Cancel this run?", 100),
            "text": plain(f"{card.workflow}: nothing after the step now running will run.", 300),
            "confirm": plain("Cancel run", 30),
            "deny": plain("Keep it", 30),
            "style": "danger",
        }
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    button("Status", RUN_STATUS, card.run_id),
                    button("Cancel run", RUN_CANCEL, card.run_id, "danger", confirm),
                ],
            }
        )
    fallback = f"{card.workflow}: {card.status}"
    return truncate(fallback, 3000), blocks
