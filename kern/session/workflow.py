"""`kern.session.workflow`: the documented path of `WorkflowSession` (it lives with the workflow run
output it holds, in `kern.run.workflow`)."""

from kern.run.workflow import WorkflowSession

__all__ = ["WorkflowSession"]
