"""devslack: Slack on this machine, for tests, benchmarks and `kern-bot dev`."""

from bot.devslack.slack import DevSlack, Message
from bot.devslack.validate import validate_blocks, validate_view

__all__ = ["DevSlack", "Message", "validate_blocks", "validate_view"]
