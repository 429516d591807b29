"""Tools an agent may call, and the `@tool` decorator that makes them."""

from kern.tools.tool import Tool, tool
from kern.tools.user_feedback import UserFeedbackTools
from kern.tools.user_input import UserInputTools

__all__ = ["Tool", "UserFeedbackTools", "UserInputTools", "tool"]
