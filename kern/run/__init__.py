"""Run outputs, requirements and events."""

from kern.run.base import RunStatus

__all__ = ["RunStatus"]
