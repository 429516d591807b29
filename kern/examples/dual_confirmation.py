"""The Nested HITL example (seeds/001) against any OpenAI-compatible endpoint.

    OPENAI_BASE_URL=http://localhost:11434/v1 OPENAI_API_KEY=unused \\
    KERN_MODEL=llama3.1 KERN_OPENAI_API=chat python -m kern.examples.dual_confirmation

KERN_OPENAI_API is `responses` (default, the Responses API) or `chat` (Chat Completions, which most
local servers speak). Answers are asked at the terminal; `--yes` approves everything.
"""

from __future__ import annotations

import argparse
import os
import sys

from kern.agent import Agent
from kern.db.sqlite import SqliteDb
from kern.models.openai import OpenAIChat, OpenAIResponses
from kern.tools import tool
from kern.workflow.step import Step
from kern.workflow.workflow import Workflow


@tool(requires_confirmation=True)
def send_alert(city: str, message: str) -> str:
    """Send a weather alert to everyone in a city.

    Args:
        city: The city to alert.
        message: The alert text.
    """
    return f"Alert sent for {city}: {message}"


def build(db_file: str = "workflow.db") -> Workflow:
    model_id = os.environ.get("KERN_MODEL", "gpt-5.4")
    model = OpenAIChat(id=model_id) if os.environ.get("KERN_OPENAI_API") == "chat" else OpenAIResponses(id=model_id)
    alert_agent = Agent(name="AlertAgent", model=model, tools=[send_alert], db=SqliteDb(db_file=db_file))
    return Workflow(
        name="DualConfirmation",
        db=SqliteDb(db_file=db_file),
        steps=[
            Step(
                name="send_alert",
                agent=alert_agent,
                requires_confirmation=True,  # step-level gate
                confirmation_message="Proceed with sending the alert?",
            ),
        ],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--yes", action="store_true", help="approve every pause without asking")
    parser.add_argument("--db", default="workflow.db")
    parser.add_argument("prompt", nargs="?", default="Send a weather alert for Tokyo about heavy rain")
    args = parser.parse_args(argv)

    def approve(question: str) -> bool:
        if args.yes or not sys.stdin.isatty():
            print(f"{question} yes")
            return True
        return input(f"{question} [y/n] ").strip().lower().startswith("y")

    workflow = build(args.db)
    run_output = workflow.run(args.prompt)
    while run_output.is_paused:
        active = (run_output.step_requirements or [])[-1:]
        for req in active:
            if req.requires_executor_input:
                for executor_req in req.executor_requirements or []:
                    call = executor_req.tool_execution
                    if approve(f"{call.tool_name}({call.tool_args})?"):
                        executor_req.confirm()
                    else:
                        executor_req.reject(note="Not approved")
            elif approve(req.confirmation_message or f"Run {req.step_name}?"):
                req.confirm()
            else:
                req.reject()
        run_output = workflow.continue_run(run_output)
    print(run_output.status.value, run_output.content)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
