"""`kern.models.response`: the documented home of `ToolExecution`, one tool call the model made.

The class itself lives with the agent run output (`kern.run.agent`), which persists it; this module
re-exports it so code written against the documented import path runs unchanged.
"""

from kern.models.base import ModelResponse, ToolCall
from kern.run.agent import ToolExecution

__all__ = ["ModelResponse", "ToolCall", "ToolExecution"]
