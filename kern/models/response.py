"""`kern.models.response`: the documented home of `ToolExecution`, one tool call the model made (and of
`UserInputField`, a value a person fills in for one).

The class itself lives with the agent run output (`kern.run.agent`), which persists it; this module
re-exports it so code written against the documented import path runs unchanged.
"""

from kern.models.base import ModelResponse, ToolCall
from kern.run.agent import ToolExecution
from kern.run.values import UserInputField

__all__ = ["ModelResponse", "ToolCall", "ToolExecution", "UserInputField"]
