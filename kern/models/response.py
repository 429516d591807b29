"""`kern.models.response`: the documented home of `ToolExecution`, one tool call the model made, and of
`UserInputField`, one field a tool asks the user to fill in.

`ToolExecution` lives with the agent run output (`kern.run.agent`), which persists it, and `UserInputField`
with the other values runs store (`kern.run.values`; workflow pauses use the same class); this module
re-exports them so code written against the documented import paths runs unchanged.
"""

from kern.models.base import ModelResponse, ToolCall
from kern.run.agent import ToolExecution
from kern.run.values import UserInputField

__all__ = ["ModelResponse", "ToolCall", "ToolExecution", "UserInputField"]
