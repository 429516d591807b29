"""`kern.media` (issue 28): images, audio and files given to an agent reach the model as the content parts of
each OpenAI API (asserted on the requests the real `openai` client sent the scripted server), are stored with
the run and read back from another process's store, and media a tool makes (`ToolResult`) reach the run's
output, an agent step's output and the workflow's, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from kern.agent import Agent
from kern.db.base import BaseDb
from kern.media import Audio, File, Image, Video
from kern.models.message import Message
from kern.models.openai import OpenAIChat, OpenAIResponses
from kern.run.base import RunStatus
from kern.tools import tool
from kern.tools.function import ToolResult
from kern.workflow import Step, Workflow
from tests.conftest import unique
from tests.openai_stub import FakeOpenAI, call, echo_tool_results, text

PNG = b"\x89PNG\r\n\x1a\n\x00\x01\xff"
PDF = b"%PDF-1.4 \x00\xff binary"


def last_user(request: dict[str, Any]) -> Any:
    items = request.get("messages") or request.get("input")
    return next(m for m in reversed(items) if m.get("role") == "user")["content"]


def test_media_follow_the_reference_constructors() -> None:
    image = Image(url="https://example.com/cat.jpg")
    assert image.id and image.guess_mime_type() == "image/jpeg"
    with pytest.raises(ValueError, match="one of 'url', 'filepath', 'content'"):
        Image()
    with pytest.raises(ValueError, match="only one of"):
        Audio(url="https://example.com/a.wav", content=b"x")
    with pytest.raises(ValueError, match="Invalid MIME type"):
        File(content=b"x", mime_type="application/x-unknown")
    assert File(id="file-123").id == "file-123"  # a provider's file, by id
    stored = Image(content=PNG, format="png").to_dict()
    assert base64.b64decode(stored["content"]) == PNG and Image.from_dict(stored).content == PNG
    text_file = File(content=b"TestData", filename="notes.txt")  # text that is valid base64 stays text
    assert File.from_dict(text_file.to_dict()).content == b"TestData"
    assert Video.from_base64(base64.b64encode(b"mp4").decode(), format="mp4").content == b"mp4"


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_images_and_files_reach_the_model_as_content_parts(
    db: BaseDb, server: FakeOpenAI, tmp_path: Path, api: str
) -> None:
    (tmp_path / "report.pdf").write_bytes(PDF)
    model = (OpenAIChat if api == "chat" else OpenAIResponses)(id="m", base_url=server.base_url, api_key="k")
    agent = Agent(name=unique("Seer"), model=model, db=db)
    server.script(text("I see a cat."))
    run = agent.run(
        "What is this?",
        images=[Image(content=PNG, mime_type="image/png"), Image(url="https://example.com/cat.jpg", detail="low")],
        files=[
            File(content=b"a,b\n1,2\n", mime_type="text/csv", filename="data.csv"),
            File(filepath=tmp_path / "report.pdf"),
        ],
        audio=[Audio(content=b"RIFFwav", format="wav")],
    )
    assert run.status == RunStatus.COMPLETED and run.content == "I see a cat."
    parts = last_user(server.requests[-1])
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    pdf_url = "data:application/pdf;base64," + base64.b64encode(PDF).decode()
    if api == "chat":
        assert parts == [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": data_url}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
            {"type": "input_audio", "input_audio": {"data": base64.b64encode(b"RIFFwav").decode(), "format": "wav"}},
            {"type": "text", "text": "File data.csv:\na,b\n1,2\n"},
            {"type": "file", "file": {"filename": "report.pdf", "file_data": pdf_url}},
        ]
    else:  # the Responses API has no audio input: the model is told, not left guessing
        assert parts[:3] == [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": data_url, "detail": "auto"},
            {"type": "input_image", "image_url": "https://example.com/cat.jpg", "detail": "low"},
        ]
        assert parts[3]["type"] == "input_text" and "cannot be read here" in parts[3]["text"]
        assert parts[4:] == [
            {"type": "input_text", "text": "File data.csv:\na,b\n1,2\n"},
            {"type": "input_file", "filename": "report.pdf", "file_data": pdf_url},
        ]
    # stored with the run: read back by a new agent object, as the reference API's Message carries them
    stored = Agent(name=agent.name, model=model, db=db).get_run(run.run_id)
    user = Message.from_dict(next(m for m in stored.messages if m["role"] == "user"))
    assert [i.content for i in user.images or []] == [PNG, None]
    assert (user.files or [])[0].content == b"a,b\n1,2\n"  # bytes given are stored: a takeover elsewhere has them
    assert str((user.files or [])[1].filepath).endswith("report.pdf")  # a path, as given


def test_a_later_turn_sees_that_media_were_shared_not_their_bytes(db: BaseDb, server: FakeOpenAI) -> None:
    model = OpenAIChat(id="m", base_url=server.base_url, api_key="k")
    agent = Agent(name=unique("Seer"), model=model, db=db, add_history_to_context=True)
    server.script(text("A cat."), text("Still a cat."))
    agent.run("What is this?", images=[Image(content=PNG, mime_type="image/png")], session_id="s1")
    agent.run("And now?", session_id="s1")
    history = server.requests[-1]["messages"]
    earlier = next(m for m in history if m["role"] == "user")
    assert isinstance(earlier["content"], str) and "[shared here earlier: image" in earlier["content"]
    assert history[-1] == {"role": "user", "content": "And now?"}


def test_a_video_is_named_to_the_chat_model_not_sent(db: BaseDb, server: FakeOpenAI) -> None:
    agent = Agent(name=unique("Seer"), model=OpenAIChat(id="m", base_url=server.base_url, api_key="k"), db=db)
    server.script(text("ok"))
    agent.run("Watch", videos=[Video(content=b"mp4", format="mp4")])
    parts = last_user(server.requests[-1])
    assert parts[1]["type"] == "text" and "video" in parts[1]["text"] and "no video" in parts[1]["text"]
    with pytest.raises(TypeError, match=r"kern\.media\.Image"):
        agent.run("Wrong kind", images=[File(content=b"x", filename="x.txt")])  # type: ignore[list-item]


@tool
def draw_chart(title: str) -> ToolResult:
    """Draw a chart."""
    return ToolResult(
        content=f"Drew {title}",
        images=[Image(content=PNG, mime_type="image/png", alt_text=title)],
        files=[File(content=b"x,y\n", mime_type="text/csv", filename=f"{title}.csv")],
    )


def test_media_a_tool_makes_reach_the_run_and_the_workflow(db: BaseDb, server: FakeOpenAI) -> None:
    agent = Agent(
        name=unique("Charter"),
        model=OpenAIChat(id="m", base_url=server.base_url, api_key="k"),
        db=db,
        tools=[draw_chart],
    )
    server.script(call("draw_chart", title="sales"), echo_tool_results)
    run = agent.run("Chart the sales")
    assert run.content == "Final: Drew sales"  # the model reads the text
    assert [i.alt_text for i in run.images or []] == ["sales"] and (run.files or [])[0].filename == "sales.csv"
    stored = agent.get_run(run.run_id)
    assert (stored.images or [])[0].content == PNG and (stored.files or [])[0].content == b"x,y\n"

    workflow = Workflow(name=unique("charts"), db=db, steps=[Step(name="chart", agent=agent)])
    server.script(call("draw_chart", title="costs"), echo_tool_results)
    given = Image(url="https://example.com/in.png")
    out = workflow.run("Chart the costs", images=[given])
    assert out.status == RunStatus.COMPLETED
    step = out.step_results[0]
    assert [f.filename for f in step.files or []] == ["costs.csv"]
    assert [i.url or i.alt_text for i in out.images or []] == ["https://example.com/in.png", "costs"]
    again = workflow.get_run(out.run_id)
    assert (again.step_results[0].files or [])[0].content == b"x,y\n"
    assert server.requests[-2]["messages"][-1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "https://example.com/in.png"},
    }  # the workflow's image reached the step's agent
