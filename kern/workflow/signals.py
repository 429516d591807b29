"""The base of the engine's control-flow signals (pause, cancel, step failed, executor paused).

They unwind user code on their way to the driver, so they must not be what `except Exception:` in an
executor catches: an executor that wraps an agent call in `try: ... except Exception:` would otherwise
eat the tool-call pause and the run would go on as if nobody had been asked. Deriving from
`BaseException` (like `asyncio.CancelledError`) keeps them out of such handlers. Errors of user code stay
`Exception`s, and the engine still turns those into step errors.
"""

from __future__ import annotations


class _ControlFlow(BaseException):
    """Engine control flow: never raised to, nor meant to be caught by, user code."""
