"""Tools an agent may call, and the `@tool` decorator that makes them."""

from kern.tools.tool import Tool, tool
from kern.tools.tool import Tool as Function
from kern.tools.toolkit import Toolkit
from kern.tools.user_feedback import UserFeedbackTools
from kern.tools.user_input import UserInputTools

__all__ = ["Function", "Tool", "Toolkit", "UserFeedbackTools", "UserInputTools", "tool"]
