"""`kern.models.openai.responses`: the documented home of `OpenAIResponses` (one implementation, in
`kern.models.openai`)."""

from kern.models.openai import OpenAIResponses

__all__ = ["OpenAIResponses"]
