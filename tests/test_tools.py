"""@tool and @approval: options, schemas, execution."""

from __future__ import annotations

import asyncio
import threading

import pytest

from kern.approval import approval
from kern.tools import Tool, tool


def test_schema_from_hints_and_docstring() -> None:
    @tool(instructions="Use for payments only.")
    def pay(amount: float, currency: str = "EUR", memo: str | None = None) -> str:
        """Pay someone.

        Args:
            amount (float): How much to pay.
            currency: ISO code.
        """
        return "ok"

    spec = pay.to_openai_chat()["function"]
    assert spec["name"] == "pay"
    assert spec["description"] == "Pay someone.\n\nUse for payments only."
    props = spec["parameters"]["properties"]
    assert props["amount"] == {"type": "number", "description": "How much to pay."}
    assert props["currency"]["default"] == "EUR" and props["currency"]["description"] == "ISO code."
    assert spec["parameters"]["required"] == ["amount"]
    assert pay.to_openai_responses()["name"] == "pay"


def test_bad_options_are_value_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown option.*requires_approval.*Valid options: name"):
        tool(requires_approval=True)
    with pytest.raises(ValueError, match="at most one of"):

        @tool(requires_confirmation=True, external_execution=True)
        def both() -> None: ...

    with pytest.raises(ValueError, match="user_input_fields \\['nope'\\]"):

        @tool(requires_user_input=True, user_input_fields=["nope"])
        def f(x: int) -> None: ...

    with pytest.raises(ValueError, match="type must be one of"):
        approval(type="maybe")


def test_sync_tools_run_in_a_worker_thread_and_args_are_validated() -> None:
    main = threading.get_ident()

    @tool
    def where(n: int) -> str:
        return f"{n} {'worker' if threading.get_ident() != main else 'main'}"

    assert asyncio.run(where.execute({"n": "4"})) == "4 worker"
    with pytest.raises(ValueError, match="n"):
        asyncio.run(where.execute({"n": "four"}))
    assert (isinstance(where, Tool) and where(2) == "2 worker") or where(2) == "2 main"


def test_approval_makes_a_plain_tool_confirmable_and_audit_needs_a_flag() -> None:
    @approval
    @tool
    def drop(table: str) -> str:
        return table

    assert drop.requires_confirmation and drop.approval_type == "required"
    with pytest.raises(ValueError, match="needs a HITL flag"):

        @approval(type="audit")
        @tool
        def plain(x: int) -> int:
            return x
