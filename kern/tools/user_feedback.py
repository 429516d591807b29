"""`UserFeedbackTools`: the agent asks the person structured questions with options, and waits.

The toolkit gives the model one tool, `ask_user(questions)`. Calling it pauses the run with a
requirement whose `needs_user_feedback` is true and whose `user_feedback_schema` lists the questions;
`requirement.provide_user_feedback({question: [labels]})` answers them and `continue_run` hands the
answers to the model as the tool's result. Works for agents, for team members (the team pauses) and for
agents inside workflow steps (the step's executor pause).
"""

from __future__ import annotations

from typing import Any

# The question types live in kern.run.values (a paused run stores them); their public path is this one.
from kern.run.values import AskUserOption, AskUserQuestion
from kern.tools.tool import Tool

DEFAULT_INSTRUCTIONS = (
    "When you need the user to choose between alternatives before you can go on, call ask_user with one "
    "to four questions. Each question ends with a question mark, has a short header (at most 12 characters) "
    "and two to four options with a label of one to five words and an optional description. Set multi_select "
    "when several options may be chosen. The run pauses until the user answers; their choices come back as "
    "the tool's result."
)


def ask_user(questions: list[AskUserQuestion]) -> str:
    """Ask the user one or more questions, each with predefined options, and wait for their choices.

    Args:
        questions: The questions to ask, each with a header, two to four options and multi_select.
    """
    raise AssertionError("answered by the person, never called")  # pragma: no cover


class _AskUserTool(Tool):
    def __init__(self, instructions: str | None) -> None:
        super().__init__(ask_user, instructions=instructions)
        self.requires_user_feedback = True

    def user_feedback_schema(self, provided_args: dict[str, Any]) -> list[AskUserQuestion]:
        """The model's questions, validated (a ValueError, reported to the model, if they do not fit)."""
        raw = provided_args.get("questions")
        if not isinstance(raw, list) or not raw:
            raise ValueError("questions must be a non-empty list")
        questions = [AskUserQuestion.model_validate({**q, "selected_options": None}) for q in raw]
        texts = [q.question for q in questions]
        if len(set(texts)) != len(texts):
            raise ValueError("each question must be asked once")
        for q in questions:
            labels = [o.label for o in q.options]
            if len(set(labels)) != len(labels):
                raise ValueError(f"the options of {q.question!r} must have distinct labels")
        return questions


class UserFeedbackTools:
    """`Agent(tools=[UserFeedbackTools()])`: the agent may pause to ask structured questions.

    `instructions` replaces the default guidance given to the model; `add_instructions=False` leaves it
    out of the system prompt.
    """

    def __init__(self, instructions: str | None = None, add_instructions: bool = True) -> None:
        self.instructions = instructions or DEFAULT_INSTRUCTIONS
        self.add_instructions = add_instructions
        self.tools = [_AskUserTool(self.instructions if add_instructions else None)]


__all__ = ["AskUserOption", "AskUserQuestion", "UserFeedbackTools"]
