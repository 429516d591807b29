"""kern: durable workflows and agents with human-in-the-loop pauses."""

from kern.exceptions import (
    KernError,
    LostOwnershipError,
    RequirementNotResolvedError,
    RunAlreadyResumedError,
    RunCancelledWhileRunningError,
    RunNotFoundError,
    RunNotPausedError,
    StoreError,
    StoreUnavailableError,
)
from kern.workflow.timeouts import expire_due, recover_orphans

__version__ = "0.1.0"

__all__ = [
    "KernError",
    "LostOwnershipError",
    "RequirementNotResolvedError",
    "RunAlreadyResumedError",
    "RunCancelledWhileRunningError",
    "RunNotFoundError",
    "RunNotPausedError",
    "StoreError",
    "StoreUnavailableError",
    "__version__",
    "expire_due",
    "recover_orphans",
]
