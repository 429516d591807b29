"""A user message's media (`images`, `audio`, `videos`, `files` on the stored message, see `kern.media`) as
the content parts of OpenAI's two APIs.

Chat Completions: an image is an `image_url` part (its URL, or a data URL of its bytes); a text-like file is
a text part with its name and text; any other file is a `file` part (its bytes as a data URL: the API reads
PDFs), or its provider `id` as `file_id`; wav and mp3 audio are `input_audio` parts. The Responses API: the
same as `input_image`, `input_text` and `input_file` (which also takes a file's URL); it has no audio
input. What an API cannot take (video; audio in another format; a file only given by URL in Chat
Completions) becomes a text part saying so, and is logged: the model is told rather than left guessing.
"""

from __future__ import annotations

import logging
from typing import Any

from kern.media import Audio, File, Image, Video, as_media

log = logging.getLogger("kern.models")

MEDIA_KEYS = ("images", "audio", "videos", "files")
_AUDIO_FORMATS = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
}


def has_media(message: dict[str, Any]) -> bool:
    """True if the stored message carries media."""
    return any(message.get(key) for key in MEDIA_KEYS)


def _data_url(item: Image | File | Audio) -> str:
    return f"data:{item.guess_mime_type()};base64,{item.to_base64()}"


def _text_of(item: File) -> str | None:
    """A text-like file's text (None if it is not text, or not UTF-8)."""
    if not item.is_text or (item.content is None and item.filepath is None):
        return None
    if isinstance(item.content, str):
        return item.content
    data = item.get_content_bytes() or b""
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None


def _file_text(item: File, text: str) -> str:
    return f"File {item.describe()}:\n{text}"


def _not_passed(item: Any, api: str, why: str) -> dict[str, Any]:
    log.warning("%s: %s %s is not passed to the model: %s", api, item.KIND, item.describe(), why)
    return {"type": "text", "text": f"[{item.KIND} {item.describe()} was shared but cannot be read here: {why}]"}


def _audio_format(item: Audio) -> str | None:
    if item.format in ("wav", "mp3"):
        return item.format
    return _AUDIO_FORMATS.get(item.guess_mime_type())


def chat_content(message: dict[str, Any]) -> Any:
    """The `content` of a Chat Completions user message: its text alone, or parts when it carries media."""
    text = message.get("content") or ""
    if not has_media(message):
        return text
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    for image in as_media(Image, message.get("images")):
        url = image.url or _data_url(image)
        part: dict[str, Any] = {"url": url}
        if image.detail:
            part["detail"] = image.detail
        parts.append({"type": "image_url", "image_url": part})
    for audio in as_media(Audio, message.get("audio")):
        fmt = _audio_format(audio)
        if fmt is None:
            parts.append(_not_passed(audio, "chat", "the API takes wav and mp3 audio only"))
        else:
            parts.append({"type": "input_audio", "input_audio": {"data": audio.to_base64(), "format": fmt}})
    for video in as_media(Video, message.get("videos")):
        parts.append(_not_passed(video, "chat", "the API takes no video"))
    for file in as_media(File, message.get("files")):
        body = _text_of(file)
        if body is not None:
            parts.append({"type": "text", "text": _file_text(file, body)})
        elif file.content is not None or file.filepath is not None:
            name = file.filename or file.name or file.describe()
            parts.append({"type": "file", "file": {"filename": name, "file_data": _data_url(file)}})
        elif file.id and not file.url:
            parts.append({"type": "file", "file": {"file_id": file.id}})
        else:
            parts.append(_not_passed(file, "chat", "the API takes no file URLs; give its bytes"))
    return parts


def responses_content(message: dict[str, Any]) -> Any:
    """The `content` of a Responses API input message: its text alone, or input parts when it carries media."""
    text = message.get("content") or ""
    if not has_media(message):
        return text
    parts: list[dict[str, Any]] = [{"type": "input_text", "text": text}] if text else []
    for image in as_media(Image, message.get("images")):
        parts.append(
            {"type": "input_image", "image_url": image.url or _data_url(image), "detail": image.detail or "auto"}
        )
    for item in [*as_media(Audio, message.get("audio")), *as_media(Video, message.get("videos"))]:
        parts.append({**_not_passed(item, "responses", f"the API takes no {item.KIND} input"), "type": "input_text"})
    for file in as_media(File, message.get("files")):
        body = _text_of(file)
        if body is not None:
            parts.append({"type": "input_text", "text": _file_text(file, body)})
        elif file.content is not None or file.filepath is not None:
            name = file.filename or file.name or file.describe()
            parts.append({"type": "input_file", "filename": name, "file_data": _data_url(file)})
        elif file.url:
            parts.append({"type": "input_file", "file_url": file.url})
        else:
            parts.append({"type": "input_file", "file_id": file.id})
    return parts
