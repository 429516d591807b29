"""The App Home tab: "Waiting on you" (every pause the person may answer, with its controls, newest
first, as many as fit in Slack's 100 blocks, then "and N more" and Previous / Next) and "Your runs". Pure
functions, no I/O."""

from __future__ import annotations

from typing import Any

from bot.blocks.kit import ROUTE_BLOCK, Blocks, button, context
from bot.blocks.text import SECTION_TEXT, clip, escape

HOME_PAGE = "kern:home_page"  # Next / Previous: the value is the place in the list of the first pause to show
GRANT_REVOKE = "kern:grant_revoke"  # the value is the grant's id
HOME_BLOCKS = 100  # a Home tab holds at most 100 blocks (https://docs.slack.dev/reference/block-kit/blocks)
MOST_GRANTS = 5  # standing approvals listed (newest first)
FRAME = 8 + 2 + MOST_GRANTS  # blocks around the pauses: headers, counts, "and N more" lines, buttons, runs, grants
PAUSE_BLOCKS = HOME_BLOCKS - FRAME  # what the pauses shown may take, a divider after each included


def _unique_in_view(blocks: Blocks, n: int) -> Blocks:
    """A pause's blocks made unique among the others on the page: its route picker gets a block id of its
    own (block ids are unique in a view), and its action ids `:<n>` (listeners match `kern:<action>`
    followed by such numbers). Slack asks action ids to be unique only in their block, so the latter is
    for telling the pauses apart, not for Slack."""
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
    waiting: list[Blocks],
    total: int,
    start: int,
    previous: int | None,
    runs: list[str],
    grants: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """The Home tab: the pauses in `waiting` (each one's message blocks, newest first; together within
    PAUSE_BLOCKS), the pauses from place `start` of the `total` waiting on the person; `previous`, where
    the Previous button starts (None: no Previous); then `runs` (one line each), then `grants` (standing
    approvals the person may revoke: id and description)."""
    blocks: Blocks = [{"type": "header", "text": {"type": "plain_text", "text": ":inbox_tray: Waiting on you"}}]
    if not total:
        blocks.append(context("Nothing waits on you. Pauses you may answer show up here."))
    else:
        count = f"{total} pause{'s wait' if total != 1 else ' waits'} on you, newest first."
        if len(waiting) < total:
            count += f" Showing {start + 1}-{start + len(waiting)}."
        blocks.append(context(count))
    for n, pause in enumerate(waiting):
        blocks.extend(_unique_in_view(pause, n))
        blocks.append({"type": "divider"})
    more = total - start - len(waiting)
    if more > 0:
        blocks.append(context(f"...and {more} more: *Next* shows them."))
    nav = []
    if previous is not None:
        nav.append(button("Previous", f"{HOME_PAGE}:0", str(previous)))
    if more > 0:
        nav.append(button("Next", f"{HOME_PAGE}:1", str(start + len(waiting)), "primary"))
    if nav:
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
        if len(grants) > MOST_GRANTS:
            blocks.append(context(f"...and {len(grants) - MOST_GRANTS} more standing approvals."))
    return {"type": "home", "callback_id": "kern:home", "blocks": blocks}


def run_line(run_id: str, workflow: str, channel: str, status: str, link: str | None = None) -> str:
    """One line of "Your runs" (`link`: to the run card; `status`: the card's status line, mrkdwn)."""
    shown = f"<{link}|{run_id[:12]}>" if link else f"`{run_id[:12]}`"
    return f"{shown} *{escape(workflow)}* in <#{channel}>: {clip(status, 200)}"


def turn_line(run_id: str, asked: str, channel: str, status: str, link: str | None = None) -> str:
    """One line of "Your runs" for a turn of a conversation: what the person asked, and where (`link`: to its
    thread; a DM is named as such); `status`: the turn's status line, mrkdwn."""
    thread = f"<{link}|its thread>" if link else "its thread"
    where = "our DM" if channel.startswith("D") else f"<#{channel}>"
    said = clip(escape(" ".join((asked or "").split())), 80) or "(nothing)"
    return f"`{run_id[:12]}` :speech_balloon: You asked \u201c{said}\u201d in {where} ({thread}): {clip(status, 200)}"
