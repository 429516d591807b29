"""Agents: a model with tools, whose tool calls can wait for a person."""

from kern.agent.agent import Agent
from kern.models.message import Message
from kern.run.agent import RunOutput, RunRequirement, ToolExecution

__all__ = ["Agent", "Message", "RunOutput", "RunRequirement", "ToolExecution"]
