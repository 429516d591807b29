"""`kern.media`: images, audio, video and files going into a run (`Agent.run(images=..., files=...)`) and
coming out of it (`RunOutput.images`, `RunOutput.files`, a tool's `ToolResult(files=...)`).

Each is given by exactly one source, as in the reference API: a `url`, a local `filepath`, or the bytes
themselves (`content`); a `File` may instead name a provider's file by `id` or carry an `external`
object. Media are stored with the run that received or produced them: `to_dict()` is the stored form (the
bytes as base64; a text file's as its text), `from_dict()` reads it back. Media given by bytes are stored
with their bytes, so a run taken over by another process, or continued days later, still has them; a
`url` or `filepath` is stored as given and read again when a model is called (as in the reference API).

Which models accept what is in docs/differences.md (kern's OpenAI models: images, text files, PDFs and
wav/mp3 audio; no video).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import mimetypes
import urllib.request
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar
from uuid import uuid4

from pydantic import BaseModel, BeforeValidator, PlainSerializer, ValidationError, field_validator, model_validator

from kern._json import to_jsonable

# The content types `File` accepts (as the reference API's `File.valid_mime_types`): documents, text, code.
FILE_MIME_TYPES = (
    "application/pdf",
    "application/json",
    "application/x-javascript",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/msword",
    "application/vnd.ms-powerpoint",
    "application/vnd.ms-excel",
    "application/vnd.ms-outlook",
    "text/javascript",
    "application/x-python",
    "text/x-python",
    "text/plain",
    "text/html",
    "text/css",
    "text/markdown",
    "text/csv",
    "text/xml",
    "text/rtf",
)
URL_TIMEOUT = 30.0  # seconds a fetch of a `url` may take

# Content types read as text (a model is given their text, not their bytes).
TEXT_MIME_TYPES = frozenset(
    t for t in FILE_MIME_TYPES if t.startswith("text/") or t in ("application/json", "application/x-javascript")
) | {"application/x-python", "application/xml"}


def _one_source(data: Any, sources: tuple[str, ...], what: str) -> Any:
    """The reference API's rule: exactly one of `url`, `filepath`, `content`; an id is made when none is given."""
    if isinstance(data, dict):
        given = [name for name in sources if data.get(name) is not None]
        if not given:
            raise ValueError(f"{what}: one of {', '.join(repr(s) for s in sources)} must be provided")
        if len(given) > 1:
            raise ValueError(f"{what}: only one of {', '.join(repr(s) for s in sources)} should be provided")
        if data.get("id") is None:
            data = {**data, "id": str(uuid4())}
    return data


class _Media(BaseModel):
    """What every kind of media shares: where its bytes are, what they are, and their stored form."""

    KIND: ClassVar[str] = "media"
    DEFAULT_MIME: ClassVar[str] = "application/octet-stream"

    url: str | None = None
    filepath: Path | str | None = None
    content: Any = None
    id: str | None = None
    format: str | None = None
    mime_type: str | None = None

    def get_content_bytes(self) -> bytes | None:
        """The bytes: given, read from `filepath`, or fetched from `url` (blocking; see `aget_content_bytes`)."""
        if self.content is not None:
            return self.content.encode() if isinstance(self.content, str) else bytes(self.content)
        if self.filepath is not None:
            return Path(self.filepath).read_bytes()
        if self.url:
            with urllib.request.urlopen(self.url, timeout=URL_TIMEOUT) as response:
                return bytes(response.read())
        return None

    async def aget_content_bytes(self) -> bytes | None:
        """`get_content_bytes` without blocking the event loop (a path is read, a URL fetched, in a thread)."""
        if self.content is not None:
            return self.get_content_bytes()
        return await asyncio.to_thread(self.get_content_bytes)

    def to_base64(self) -> str | None:
        """The bytes as base64 text (None when there are none)."""
        data = self.get_content_bytes()
        return base64.b64encode(data).decode() if data else None

    def guess_mime_type(self) -> str:
        """`mime_type`, else one guessed from `format`, the file name or the URL, else the kind's default."""
        if self.mime_type:
            return self.mime_type
        if self.format:
            guessed = mimetypes.guess_type(f"x.{self.format}")[0]
            if guessed:
                return guessed
        for name in (getattr(self, "filename", None), self.filepath, self.url):
            if name:
                guessed = mimetypes.guess_type(str(name))[0]
                if guessed:
                    return guessed
        return self.DEFAULT_MIME

    def _stored_content(self) -> Any:
        if isinstance(self.content, (bytes, bytearray)):
            return base64.b64encode(bytes(self.content)).decode()
        return self.content

    def to_dict(self, include_base64_content: bool = True) -> dict[str, Any]:
        """The stored form: set fields only, `content` as base64 (left out with `include_base64_content=False`)."""
        data = self.model_dump(exclude_none=True, exclude={"content", "filepath", "external"})
        if self.filepath is not None:
            data["filepath"] = str(self.filepath)
        if include_base64_content and self.content is not None:
            data["content"] = self._stored_content()
        return data

    @classmethod
    def _decoded(cls, data: dict[str, Any]) -> Any:
        content = data.get("content")
        if not isinstance(content, str):
            return content
        try:
            return base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            return content.encode()

    @classmethod
    def from_dict(cls: type[_M], data: dict[str, Any]) -> _M:
        """Read the stored form (`to_dict`) back: base64 content becomes bytes again."""
        return cls.model_validate({**data, "content": cls._decoded(data)} if "content" in data else data)

    @classmethod
    def from_base64(cls: type[_M], base64_content: str, **fields: Any) -> _M:
        """Media from base64 text (text that is not base64 is taken as it is, UTF-8 encoded)."""
        return cls.from_dict({**fields, "content": base64_content})

    def describe(self) -> str:
        """A short name for messages: the file name, else its path or URL's last part, else its kind and id."""
        name = getattr(self, "filename", None) or getattr(self, "name", None)
        if not name and (self.filepath or self.url):
            name = Path(str(self.filepath or self.url)).name
        return str(name or f"{self.KIND} {self.id or ''}".strip())


_M = TypeVar("_M", bound=_Media)


class Image(_Media):
    """An image: a URL, a local file or its bytes. `detail` is the model's resolution hint (low, high, auto)."""

    KIND: ClassVar[str] = "image"
    DEFAULT_MIME: ClassVar[str] = "image/png"

    content: bytes | None = None
    detail: str | None = None
    original_prompt: str | None = None
    revised_prompt: str | None = None
    alt_text: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _source(cls, data: Any) -> Any:
        return _one_source(data, ("url", "filepath", "content"), "Image")


class Audio(_Media):
    """A recording: a URL, a local file or its bytes (`format`: wav, mp3, ...)."""

    KIND: ClassVar[str] = "audio"
    DEFAULT_MIME: ClassVar[str] = "audio/wav"

    content: bytes | None = None
    duration: float | None = None
    sample_rate: int | None = 24000
    channels: int | None = 1
    transcript: str | None = None
    expires_at: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _source(cls, data: Any) -> Any:
        return _one_source(data, ("url", "filepath", "content"), "Audio")


class Video(_Media):
    """A video: a URL, a local file or its bytes."""

    KIND: ClassVar[str] = "video"
    DEFAULT_MIME: ClassVar[str] = "video/mp4"

    content: bytes | None = None
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    eta: str | None = None
    original_prompt: str | None = None
    revised_prompt: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _source(cls, data: Any) -> Any:
        return _one_source(data, ("url", "filepath", "content"), "Video")


class File(_Media):
    """A document: a URL, a local file, its bytes (or text), a provider's file `id`, or an `external` object.
    `mime_type`, when given, is one of `File.valid_mime_types()`."""

    KIND: ClassVar[str] = "file"

    file_type: str | None = None
    filename: str | None = None
    size: int | None = None
    external: Any = None
    name: str | None = None
    citations: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _source(cls, data: Any) -> Any:
        if isinstance(data, dict) and not any(data.get(f) for f in ("id", "url", "filepath", "content", "external")):
            raise ValueError("File: at least one of id, url, filepath, content or external must be provided")
        return data

    @field_validator("mime_type")
    @classmethod
    def _known_mime_type(cls, value: str | None) -> str | None:
        if value is not None and value not in FILE_MIME_TYPES:
            raise ValueError(f"Invalid MIME type: {value}. Must be one of: {list(FILE_MIME_TYPES)}")
        return value

    @classmethod
    def valid_mime_types(cls) -> list[str]:
        """The content types a `File` may declare."""
        return list(FILE_MIME_TYPES)

    @property
    def is_text(self) -> bool:
        """True for a text-like file (its text is what a model is given)."""
        return self.guess_mime_type() in TEXT_MIME_TYPES

    def _stored_content(self) -> Any:
        if isinstance(self.content, (bytes, bytearray)) and self.is_text:
            try:
                return bytes(self.content).decode()
            except UnicodeDecodeError:
                pass
        return super()._stored_content()

    @classmethod
    def _decoded(cls, data: dict[str, Any]) -> Any:
        described = cls.model_construct(**{k: v for k, v in data.items() if k != "content"})
        if isinstance(data.get("content"), str) and described.is_text:
            return data["content"].encode()  # stored as its text (`to_dict`), not base64
        return super()._decoded(data)


MEDIA_TYPES: dict[str, type[_Media]] = {"images": Image, "audio": Audio, "videos": Video, "files": File}


def _loader(cls: type[_Media]) -> Any:
    def load(value: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            return value
        loaded = []
        for item in value:
            if isinstance(item, dict):
                try:
                    item = cls.from_dict(item)
                except ValidationError:
                    pass  # not media: kept as the JSON it was stored as
            loaded.append(item)
        return loaded

    return load


def _dump(value: Any) -> Any:
    if value is None:
        return None
    return [item.to_dict() if isinstance(item, _Media) else to_jsonable(item) for item in value]


# Stored lists of media (a run's, a step's): written with `to_dict()`, read back with `from_dict()`; anything
# else in the list is kept as `to_jsonable` gives it.
ImageList = Annotated[list[Any] | None, BeforeValidator(_loader(Image)), PlainSerializer(_dump)]
AudioList = Annotated[list[Any] | None, BeforeValidator(_loader(Audio)), PlainSerializer(_dump)]
VideoList = Annotated[list[Any] | None, BeforeValidator(_loader(Video)), PlainSerializer(_dump)]
FileList = Annotated[list[Any] | None, BeforeValidator(_loader(File)), PlainSerializer(_dump)]


def as_media(cls: type[_M], items: Any) -> list[_M]:
    """`items` (objects, or their stored dicts) as a list of `cls`; None gives []."""
    return [item if isinstance(item, cls) else cls.from_dict(item) for item in items or []]


def media_fields(**given: Any) -> dict[str, list[dict[str, Any]]]:
    """The media given to a run (`images=`, `audio=`, `videos=`, `files=`) as a stored message carries them:
    each kind's list of stored forms, kinds with none left out. Raises TypeError for an item of the wrong kind."""
    fields: dict[str, list[dict[str, Any]]] = {}
    for key, items in given.items():
        cls = MEDIA_TYPES[key]
        stored = []
        for item in items or []:
            if not isinstance(item, cls):
                raise TypeError(f"{key}= takes kern.media.{cls.__name__} objects, got {type(item).__name__}")
            stored.append(item.to_dict())
        if stored:
            fields[key] = stored
    return fields


def without_media(message: dict[str, Any]) -> dict[str, Any]:
    """A stored message with its media replaced by a line naming them: what a later run's history carries
    (the bytes stay with the run they were given to, and are not sent to the model again)."""
    if not any(message.get(key) for key in MEDIA_TYPES):
        return message
    names = [
        f"{cls.KIND} {cls.from_dict(item).describe() if isinstance(item, dict) else item}"
        for key, cls in MEDIA_TYPES.items()
        for item in message.get(key) or []
    ]
    kept = {k: v for k, v in message.items() if k not in MEDIA_TYPES}
    note = f"[shared here earlier: {', '.join(names)}]"
    kept["content"] = f"{message.get('content') or ''}\n{note}".strip()
    return kept


__all__ = ["Audio", "File", "Image", "Video"]
