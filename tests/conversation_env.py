"""A bot with a conversational agent (`BotAgent`) on the scripted model, beside the bundled workflows, behind the
stand-in: the set-up every conversation test file shares (mentions, DMs, the assistant pane, files, streaming)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.devslack import DevSlack
from bot.registry import BotAgent, Registry
from bot.slack.app import KernBot
from kern.agent import Agent
from kern.models.openai import OpenAIChat
from tests.conftest import make_db, unique
from tests.openai_stub import FakeOpenAI
from tests.test_bot_e2e import SECRET, registry_for, start_bot


@dataclass
class Env:
    slack: DevSlack
    bot: KernBot
    model: FakeOpenAI


@contextlib.asynccontextmanager
async def talking_bot(
    db_kind: str,
    tmp_path: Path,
    model: FakeOpenAI,
    *,
    tools: Sequence[Any] = (),
    rules: dict[str, Any] | None = None,
    name: str = "Helper",
) -> AsyncIterator[Env]:
    """The bot, its agent `name` with `tools` and `BotAgent` keywords `rules`, on a fresh database."""
    db = make_db(db_kind, tmp_path)
    agent = Agent(
        name=unique(name),
        model=OpenAIChat(id="scripted", base_url=model.base_url, api_key="scripted"),
        tools=list(tools),
    )
    talker = BotAgent(agent, name=unique(name.lower()), **(rules or {}))
    registry = Registry([*registry_for(db).entries.values(), talker], db)  # a conversation beside the workflows
    async with DevSlack(SECRET) as slack:
        bot, runner, endpoint = await start_bot(slack, registry)
        bot.outbox.first_retry = 0.01
        slack.bot_endpoint = endpoint
        try:
            yield Env(slack, bot, model)
        finally:
            await bot.background.idle(10)
            await runner.cleanup()


async def settle(env: Env) -> None:
    await asyncio.sleep(0.05)
    await env.bot.background.idle(15)
