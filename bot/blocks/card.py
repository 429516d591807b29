"""The run card: one message per run, updated as the run moves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.blocks.kit import (
    RUN_CANCEL,
    RUN_STATUS,
    VIEW_FULL,
    Blocks,
    button,
    confirm_dialog,
    context,
    md,
    plain,
    slack_time,
)
from bot.blocks.text import (
    FIELD_TEXT,
    HEADER_TEXT,
    OUTPUT_PREVIEW,
    SECTION_TEXT,
    as_text,
    clip,
    escape,
    shown,
    truncate,
)

MAX_ROUTE_OUTPUTS = 8  # a multi-route Router's outputs shown one by one on the card
CARD_INPUT = 300  # characters of the input the card shows; the rest is a click away ("View input")


@dataclass
class Card:
    """What the run card shows."""

    run_id: str
    workflow: str
    input: Any
    started_by: str
    status: str = "Starting…"  # mrkdwn: text from people in it is escaped by whoever wrote the line
    output: Any = None
    error: str | None = None
    finished: bool = False
    steps: list[str] = field(default_factory=list)
    started_at: float | None = None
    finished_at: float | None = None
    ended: str = "Finished"  # the verb of `finished_at`: Finished, Cancelled, Failed
    routes: list[tuple[str, Any]] = field(default_factory=list)  # each chosen route's output, when several ran


def card_blocks(card: Card) -> tuple[str, Blocks]:
    """The run card: workflow, input, who started it, a status line, then the output or the error."""
    given = as_text(card.input)
    blocks: Blocks = [
        {"type": "header", "text": plain(f"Workflow: {card.workflow}", HEADER_TEXT)},
        {
            "type": "section",
            "fields": [
                shown(given, CARD_INPUT, "Input") if given else md("*Input*\n_none_"),
                md(f"*Started by*\n<@{card.started_by}>", FIELD_TEXT),
            ],
        },
        context(f"{card.status}  ·  run `{card.run_id[:12]}`"),
    ]
    if len(escape(given)) > CARD_INPUT - 20:  # cut: the whole input is a click away
        blocks.insert(2, {"type": "actions", "elements": [button("View input", VIEW_FULL, f"input:{card.run_id}")]})
    times = []
    if card.started_at:
        times.append(f"Started {slack_time(card.started_at)}")
    if card.finished and card.finished_at:
        times.append(f"{card.ended} {slack_time(card.finished_at)}")
    if times:
        blocks.append(context(" · ".join(times)))
    if card.error:
        blocks.append(
            {"type": "section", "text": shown(card.error, SECTION_TEXT - 20, "Error", block=True, icon=":x:")}
        )
    elif card.finished and card.routes:
        blocks.extend(_route_outputs(card))
    elif card.finished and card.output is not None:
        text = as_text(card.output)
        blocks.append({"type": "section", "text": shown(text, OUTPUT_PREVIEW, "Output", block=True)})
        if len(escape(text)) > OUTPUT_PREVIEW - 20:
            blocks.append(
                {"type": "actions", "elements": [button("View full output", VIEW_FULL, f"run:{card.run_id}")]}
            )
    if not card.finished:
        confirm = confirm_dialog(
            "Cancel this run?",
            f"{card.workflow}: nothing after the step now running will run.",
            "Cancel run",
            "Keep it",
        )
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    button("Status", RUN_STATUS, card.run_id),
                    button("Cancel run", RUN_CANCEL, card.run_id, "danger", confirm),
                ],
            }
        )
    fallback = f"{escape(card.workflow)}: {card.status}"
    return clip(fallback, 3000), blocks


def _route_outputs(card: Card) -> Blocks:
    """A multi-route Router's result: each chosen route's output under its name (the run's own output is
    only the last route's)."""
    routes = card.routes[:MAX_ROUTE_OUTPUTS]
    each = max(300, min(OUTPUT_PREVIEW, 6000 // len(routes)))
    blocks: Blocks = [
        {"type": "section", "text": shown(as_text(content), each, f"Output of {truncate(name, 200)}", block=True)}
        for name, content in routes
    ]
    if len(card.routes) > len(routes):
        blocks.append(context(f"{len(card.routes) - len(routes)} more routes ran."))
    if len(card.routes) > len(routes) or any(len(escape(as_text(c))) > each - 220 for _, c in routes):
        blocks.append({"type": "actions", "elements": [button("View full output", VIEW_FULL, f"run:{card.run_id}")]})
    return blocks
