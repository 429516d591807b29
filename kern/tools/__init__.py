"""Tools an agent may call, and the `@tool` decorator that makes them."""

from kern.tools.tool import Tool, tool

__all__ = ["Tool", "tool"]
