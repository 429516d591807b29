"""kern: durable workflows and agents with human-in-the-loop pauses."""

from kern.exceptions import (
    CorruptRunError,
    KernError,
    LostOwnershipError,
    RequirementNotResolvedError,
    RunAlreadyResumedError,
    RunCancelledWhileRunningError,
    RunNotFoundError,
    RunNotPausedError,
    StoreError,
    StoreUnavailableError,
    WrongWorkflowError,
)
from kern.workflow.timeouts import Spawn, expire_due, recover_orphans

__version__ = "0.1.0"

__all__ = [
    "CorruptRunError",
    "KernError",
    "LostOwnershipError",
    "RequirementNotResolvedError",
    "RunAlreadyResumedError",
    "RunCancelledWhileRunningError",
    "RunNotFoundError",
    "RunNotPausedError",
    "Spawn",
    "StoreError",
    "StoreUnavailableError",
    "WrongWorkflowError",
    "__version__",
    "expire_due",
    "recover_orphans",
]
