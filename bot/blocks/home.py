"""The App Home tab: "Waiting on you" (every pause the person may answer, with its controls, newest
first, paged) and "Your runs". Pure functions, no I/O."""

from __future__ import annotations

from typing import Any

from bot.blocks.kit import ROUTE_BLOCK, Blocks, button, context
from bot.text import SECTION_TEXT, clip, escape

HOME_PAGE = "kern:home_page"  # Next / Previous: the value is the page to show
GRANT_REVOKE = "kern:grant_revoke"  # the value is the grant's id
HOME_BLOCKS = 100  # a Home tab holds at most 100 blocks (https://docs.slack.dev/reference/block-kit/blocks)
MOST_GRANTS = 5  # standing approvals listed (newest first)
FRAME = 8 + 2 + MOST_GRANTS  # blocks around the pauses: headers, counts, page buttons, runs, grants


def paginate(sizes: list[int], budget: int = HOME_BLOCKS - FRAME) -> list[list[int]]:
    """Indexes of the items on each page: in order, as many as fit in `budget` blocks (each item takes
    its size plus a divider). Every page has at least one item; no items gives one empty page."""
    pages: list[list[int]] = [[]]
    used = 0
    for index, size in enumerate(sizes):
        if pages[-1] and used + size + 1 > budget:
            pages.append([])
            used = 0
        pages[-1].append(index)
        used += size + 1
    return pages


def _unique_in_view(blocks: Blocks, n: int) -> Blocks:
    """A pause's blocks made unique among the others on the page: its action ids get `:<n>` (listeners
    match `kern:<action>` followed by such numbers) and its route picker a block id of its own."""
    out = []
    for block in blocks:
        block = dict(block)
        if block.get("block_id") == ROUTE_BLOCK:
            block["block_id"] = f"{ROUTE_BLOCK}:{n}"
        if block.get("type") == "actions":
            block["elements"] = [
                {**el, "action_id": f"{el['action_id']}:{n}"} if "action_id" in el else el for el in block["elements"]
            ]
        out.append(block)
    return out


def home_view(
    waiting: list[Blocks], page: int, runs: list[str], grants: list[tuple[str, str]] | None = None
) -> dict[str, Any]:
    """The Home tab: page `page` (clamped) of the pauses in `waiting` (each one's message blocks, newest
    first), then `runs` (one line each), then `grants` (standing approvals the person may revoke: id and
    description)."""
    pages = paginate([len(b) for b in waiting])
    page = max(0, min(page, len(pages) - 1))
    blocks: Blocks = [{"type": "header", "text": {"type": "plain_text", "text": ":inbox_tray: Waiting on you"}}]
    if not waiting:
        blocks.append(context("Nothing waits on you. Pauses you may answer show up here."))
    else:
        count = f"{len(waiting)} pause{'s' if len(waiting) != 1 else ''} wait on you, newest first."
        if len(pages) > 1:
            count += f" Page {page + 1} of {len(pages)}."
        blocks.append(context(count))
    for n, index in enumerate(pages[page]):
        blocks.extend(_unique_in_view(waiting[index], n))
        blocks.append({"type": "divider"})
    if len(pages) > 1:
        nav = []
        if page > 0:
            nav.append(button("Previous", f"{HOME_PAGE}:0", str(page - 1)))
        if page < len(pages) - 1:
            nav.append(button("Next", f"{HOME_PAGE}:1", str(page + 1), "primary"))
        blocks.append({"type": "actions", "block_id": "home_pages", "elements": nav})
    blocks.append({"type": "header", "text": {"type": "plain_text", "text": ":clipboard: Your runs"}})
    if runs:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": clip("\n".join(runs), SECTION_TEXT)}})
    else:
        blocks.append(context("You have not started a run yet: `/kern run <workflow>` in a channel."))
    if grants:
        blocks.append({"type": "header", "text": {"type": "plain_text", "text": ":key: Standing approvals"}})
        for grant_id, text in grants[:MOST_GRANTS]:
            blocks.append(
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": clip(text, SECTION_TEXT)},
                    "accessory": button("Revoke", GRANT_REVOKE, grant_id, "danger"),
                }
            )
    return {"type": "home", "callback_id": "kern:home", "blocks": blocks}


def run_line(run_id: str, workflow: str, channel: str, status: str, link: str | None = None) -> str:
    """One line of "Your runs" (`link`: to the run card; `status`: the card's status line, mrkdwn)."""
    shown = f"<{link}|{run_id[:12]}>" if link else f"`{run_id[:12]}`"
    return f"{shown} *{escape(workflow)}* in <#{channel}>: {clip(status, 200)}"
