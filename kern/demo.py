"""`make run` (or `python -m kern.demo`): a workflow that pauses for a person, answered at the terminal.

Without a terminal (or with --auto) the answers are given automatically, so it also runs in scripts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from kern.db.sqlite import SqliteDb
from kern.workflow import OnReject, Router, Step, StepInput, StepOutput, UserInputField, Workflow


def draft(step_input: StepInput) -> StepOutput:
    feedback = step_input.additional_data.get("rejection_feedback")
    text = f"Release notes for {step_input.input}"
    return StepOutput(content=text + (f" (revised: {feedback})" if feedback else ""))


def publish(step_input: StepInput) -> str:
    channel = step_input.additional_data["user_input"]["channel"]
    return f"Published to #{channel}: {step_input.previous_step_content}"


def build(db: SqliteDb) -> Workflow:
    return Workflow(
        name="release_notes",
        db=db,
        steps=[
            Step(name="draft", executor=draft, requires_output_review=True, on_reject=OnReject.retry),
            Router(
                name="audience",
                choices=[
                    Step(name="internal", executor=lambda s: s.previous_step_content + " [internal]"),
                    Step(name="public", executor=lambda s: s.previous_step_content + " [public]"),
                ],
                requires_user_input=True,
                user_input_message="Who should read it?",
            ),
            Step(
                name="publish",
                executor=publish,
                requires_user_input=True,
                user_input_message="Where should it go?",
                user_input_schema=[UserInputField(name="channel", description="Slack channel", value="releases")],
            ),
        ],
    )


def ask(prompt: str, auto: str, interactive: bool) -> str:
    if not interactive:
        print(f"{prompt} {auto}  (auto)")
        return auto
    return input(f"{prompt} ").strip() or auto


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--auto", action="store_true", help="answer every pause automatically")
    args = parser.parse_args(argv)
    interactive = sys.stdin.isatty() and not args.auto
    db_file = Path(tempfile.mkdtemp()) / "demo.db"
    workflow = build(SqliteDb(db_file=db_file))
    run = workflow.run("kern 0.1")
    while run.is_paused:
        req = run.step_requirements[-1]
        print(f"\n⏸  {req.step_name}: {req.message}")
        if req.requires_output_review:
            assert req.step_output is not None  # an output review pauses after the step produced its output
            print(f"   output: {req.step_output.content}")
            answer = ask("   approve? [y/n]", "y", interactive)
            req.confirm() if answer.lower().startswith("y") else req.reject(
                feedback=ask("   feedback:", "shorter", interactive)
            )
        elif req.requires_route_selection:
            req.select(ask(f"   route ({', '.join(req.available_choices or [])}):", "public", interactive))
        elif req.requires_user_input:
            values = {
                f.name: ask(f"   {f.name} [{f.value}]:", str(f.value or ""), interactive)
                for f in req.user_input_schema or []
            }
            req.set_user_input(**values)
        run = workflow.continue_run(run)
    print(f"\n{run.status.value}: {run.content}")
    print(f"(state kept in {db_file}; `make run` answers pauses like these in a local Slack in your browser)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
