"""kern-bot: the Slack side of kern's human-in-the-loop pauses."""
