"""Run outputs, requirements and events."""

# Imported here so that it is in place before any stored pause is loaded: it registers itself as the
# class an error pause loads as (`kern.run.requirement.LOADED_AS`); the requirement module cannot import
# its own subclass.
from kern.run import error_requirement as _error_requirement  # noqa: F401
from kern.run.base import RunStatus
from kern.run.context import RunContext

__all__ = ["RunContext", "RunStatus"]
