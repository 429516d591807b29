"""A toolkit that lets an agent ask the person for values it lacks (dynamic user input)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel

from kern.run.values import UserInputField
from kern.tools.tool import Tool


class RequestedField(BaseModel):
    """One value the model asks the person for."""

    field_name: str
    field_type: Literal["str", "int", "float", "bool"] = "str"
    field_description: str | None = None


def get_user_input(user_input_fields: list[RequestedField]) -> str:
    """Ask the user for information you need and do not have. The run pauses until they answer.

    Args:
        user_input_fields: The values you need, each with a name, a type and a description.
    """
    raise AssertionError("answered by the person, never called")  # pragma: no cover


class _AskUserTool(Tool):
    def __init__(self) -> None:
        super().__init__(get_user_input)
        self.requires_user_input = True  # after __init__: its parameter stays visible to the model

    def user_input_schema(self, provided_args: dict[str, Any]) -> list[UserInputField]:
        fields = []
        for raw in provided_args.get("user_input_fields") or []:
            spec = RequestedField.model_validate(raw)
            fields.append(
                UserInputField(name=spec.field_name, field_type=spec.field_type, description=spec.field_description)
            )
        return fields

    async def execute(self, args: dict[str, Any], run_values: dict[str, Any] | None = None) -> Any:
        names = [RequestedField.model_validate(f).field_name for f in args.get("user_input_fields") or []]
        return json.dumps({name: args.get(name) for name in names})


class UserInputTools:
    """`Agent(tools=[UserInputTools()])`: adds `get_user_input`, a tool the model calls with the fields it
    wants; the run pauses with a user-input requirement carrying exactly those fields."""

    def __init__(self) -> None:
        self.tools = [_AskUserTool()]
