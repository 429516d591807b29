"""A `kern-bot serve` process killed (SIGKILL) while its conversation's answer streams: the run is taken over by
the next process's sweep, and the half-written streamed message is stopped and rewritten with the finished
answer through the outbox, so the thread never keeps a half answer and shows it once. On SQLite and
PostgreSQL, with the local Slack stand-in and the scripted model (which holds the answer half written until
the first process is dead)."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from bot.devslack import DevSlack
from bot.registry import BotAgent, BotWorkflow
from kern.agent import Agent
from kern.models.openai import OpenAIChat
from tests.openai_stub import FakeOpenAI, Reply, text
from tests.test_bot_e2e import SECRET
from tests.test_bot_recovery import Bots, _ports, db_url  # noqa: F401 (db_url: the fixture)

ANSWER = "The answer, in full: " + " ".join(f"part{i}" for i in range(60)) + "."


def talkers() -> list[BotWorkflow]:
    """Built in each bot process (KERN_WORKFLOWS=tests.test_bot_stream_recovery:talkers)."""
    model = OpenAIChat(id="scripted", base_url=os.environ["STREAM_MODEL_URL"], api_key="scripted")
    return [BotAgent(Agent(name=os.environ["CRASH_FLOW_NAME"], model=model), name="talk")]


async def test_a_process_killed_mid_answer_leaves_no_half_answer(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    hold = threading.Event()
    with FakeOpenAI(fallback=lambda _body: text(ANSWER)) as model:
        model.script(Reply(text=ANSWER, hold_after=10, hold=hold))  # the first process's answer stops half way
        async with DevSlack(SECRET) as slack:
            bots = Bots(slack, db_url, tmp_path)
            bots.env.update(KERN_WORKFLOWS="tests.test_bot_stream_recovery:talkers", STREAM_MODEL_URL=model.base_url)
            first, second = _ports()
            try:
                await bots.start(first)
                ts = await slack.say_in("U1", "C1", "<@UBOT> tell me everything")
                await slack.until(lambda: len(slack.appends) >= 1, within=20)
                (streamed,) = [m for m in slack.thread(ts) if m.streaming]
                half = streamed.text
                assert half and half != ANSWER and streamed.streaming == "in_progress"
                await asyncio.sleep(0.5)  # the stream's row is written right after Slack gave its ts
                bots.kill()  # SIGKILL mid-answer: the message streams half an answer, the run is RUNNING
                hold.set()
                await bots.start(second)  # its sweep takes the run over once the lease expired
                await slack.until(lambda: streamed.streaming == "completed" and streamed.text == ANSWER, within=30)
                answers = [m for m in slack.thread(ts) if (m.metadata or {}).get("event_type") == "kern_answer"]
                assert answers == [streamed]  # rewritten in place: one answer, not a second message
                assert len([c for c in slack.calls if c[0] == "chat.startStream"]) == 1
                assert not [c for c in slack.calls if c[0] == "chat.postMessage"]
                assert slack.rejected == [], slack.rejected
            finally:
                hold.set()
                bots.stop_all()
