"""The kinds of step pause (`StepRequirement.kind`): one name each, in one place.

`kern.run.requirement` re-exports them (`from kern.run import requirement as kinds; kinds.CONFIRMATION`
is how kern and the bot read them); they live here so that the modules `kern.run.requirement` itself
imports (`kern.run.requirement_args`) can name them without importing it back.
"""

CONFIRMATION = "confirmation"
USER_INPUT = "user_input"
OUTPUT_REVIEW = "output_review"
ITERATION_REVIEW = "iteration_review"
ROUTE_SELECTION = "route_selection"
ERROR = "error"
EXECUTOR = "executor"
# A requirement built with the reference API's constructor and none of its `requires_*` flags: it asks for
# nothing (and so is resolved from the start). kern's engine never makes one; it is not in KINDS.
UNSPECIFIED = ""
KINDS = (CONFIRMATION, USER_INPUT, OUTPUT_REVIEW, ITERATION_REVIEW, ROUTE_SELECTION, ERROR, EXECUTOR)

__all__ = [
    "CONFIRMATION",
    "ERROR",
    "EXECUTOR",
    "ITERATION_REVIEW",
    "KINDS",
    "OUTPUT_REVIEW",
    "ROUTE_SELECTION",
    "UNSPECIFIED",
    "USER_INPUT",
]
