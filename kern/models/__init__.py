"""Models: a small interface (`kern.models.base.Model`) and OpenAI implementations."""

from kern.models.base import Model, ModelResponse, ToolCall

__all__ = ["Model", "ModelResponse", "ToolCall"]
