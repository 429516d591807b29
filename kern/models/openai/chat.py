"""`kern.models.openai.chat`: the documented home of `OpenAIChat` (one implementation, in `kern.models.openai`)."""

from kern.models.openai import OpenAIChat

__all__ = ["OpenAIChat"]
