"""`kern.tools.decorator`: the documented home of `@tool` (one implementation, in `kern.tools.tool`)."""

from kern.tools.tool import Tool, tool

__all__ = ["Tool", "tool"]
