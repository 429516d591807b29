"""`Toolkit`: a named group of tools, with the human gates set per tool name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kern.tools.tool import Tool


class Toolkit:
    """A named group of tools: `Agent(tools=[MyToolkit()])` gives the agent every tool in it.

    `tools` are functions (bound methods of a subclass, typically) or `Tool`s. `include_tools` keeps
    only those names, `exclude_tools` drops them; `requires_confirmation_tools` and
    `external_execution_required_tools` set those gates on the named tools. A name that is not one of
    the toolkit's tools is a `ValueError`, as is a tool named in both gate lists. With
    `add_instructions=True`, `instructions` join the agent's system prompt.
    """

    def __init__(
        self,
        name: str = "toolkit",
        tools: Sequence[Callable[..., Any] | Tool] | None = None,
        instructions: str | None = None,
        add_instructions: bool = False,
        include_tools: list[str] | None = None,
        exclude_tools: list[str] | None = None,
        requires_confirmation_tools: list[str] | None = None,
        external_execution_required_tools: list[str] | None = None,
    ) -> None:
        self.name = name
        self.instructions = instructions
        self.add_instructions = add_instructions
        made = [t if isinstance(t, Tool) else Tool(t) for t in tools or []]
        names = [t.name for t in made]
        for option, listed in (
            ("include_tools", include_tools),
            ("exclude_tools", exclude_tools),
            ("requires_confirmation_tools", requires_confirmation_tools),
            ("external_execution_required_tools", external_execution_required_tools),
        ):
            unknown = sorted(set(listed or []) - set(names))
            if unknown:
                raise ValueError(
                    f"Toolkit {name!r}: {option} names {', '.join(unknown)}, not tools of it "
                    f"(its tools: {', '.join(names) or 'none'})."
                )
        both = sorted(set(requires_confirmation_tools or []) & set(external_execution_required_tools or []))
        if both:
            raise ValueError(
                f"Toolkit {name!r}: {', '.join(both)} cannot both require confirmation and run externally."
            )
        if include_tools is not None:
            made = [t for t in made if t.name in include_tools]
        made = [t for t in made if t.name not in (exclude_tools or [])]
        for tool in made:
            if tool.name in (requires_confirmation_tools or []):
                tool.requires_confirmation = True
            if tool.name in (external_execution_required_tools or []):
                tool.external_execution = True
        self.tools: list[Tool] = made

    @property
    def functions(self) -> dict[str, Tool]:
        """The toolkit's tools by name."""
        return {tool.name: tool for tool in self.tools}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, tools={[t.name for t in self.tools]})"


__all__ = ["Toolkit"]
