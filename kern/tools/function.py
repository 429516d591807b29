"""`kern.tools.function`: the reference API's module of tool definitions.

`Function` is kern's `Tool` (a function with its schema and human gates; build one with `@tool` or
`Tool(fn, ...)`), and `UserInputField` is the field a person fills in at a user-input pause.
`ToolResult` is what a tool returns when it makes images or files as well as text.
"""

from kern.run.values import UserInputField
from kern.tools.result import ToolResult
from kern.tools.tool import Tool as Function

__all__ = ["Function", "ToolResult", "UserInputField"]
