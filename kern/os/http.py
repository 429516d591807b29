"""The HTTP plumbing AgentOS's routes share: form fields, JSON errors, server-sent events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from kern._json import to_jsonable

# What a form's true / false look like (the reference's forms take these spellings).
_TRUE = frozenset(("true", "1", "yes", "on", "t", "y"))
_FALSE = frozenset(("false", "0", "no", "off", "f", "n", ""))


class HTTPError(Exception):
    """A refusal a route answers with: its status and a `detail` (the reference's error body)."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(to_jsonable(data), status=status)


def error_response(error: HTTPError) -> web.Response:
    return web.json_response({"detail": error.detail}, status=error.status)


def _missing(name: str) -> HTTPError:
    return HTTPError(422, [{"loc": ["body", name], "msg": "Field required", "type": "missing"}])


class Form:
    """A request's form fields (urlencoded or multipart), read by name; `check_known` refuses fields this
    route does not take, so nothing a client sends is silently dropped."""

    def __init__(self, fields: MultiDictProxy[Any]) -> None:
        self.fields = fields

    @classmethod
    async def read(cls, request: web.Request) -> Form:
        fields = await request.post()
        uploads = [name for name, value in fields.items() if isinstance(value, web.FileField)]
        if uploads:
            raise HTTPError(400, f"File uploads are not supported by kern's AgentOS (field(s): {', '.join(uploads)})")
        return cls(fields)

    def check_known(self, known: Iterable[str]) -> None:
        allowed = set(known)
        unknown = sorted({name for name in self.fields if name not in allowed})
        if unknown:
            raise HTTPError(
                400,
                f"Unsupported form field(s): {', '.join(unknown)}. This route takes: {', '.join(sorted(allowed))}.",
            )

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self.fields.get(name)
        if value is None:
            if required:
                raise _missing(name)
            return None
        return str(value)

    def flag(self, name: str, default: bool) -> bool:
        value = self.fields.get(name)
        if value is None:
            return default
        lowered = str(value).strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise HTTPError(
            422, [{"loc": ["body", name], "msg": "Input should be a valid boolean", "type": "bool_parsing"}]
        )

    def json_list(self, name: str) -> list[Any] | None:
        """A field holding a JSON list (of tools, requirements, ...); empty or absent is None."""
        raw = self.text(name)
        if not raw:
            return None
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise HTTPError(400, f"Invalid JSON in {name} field") from None
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise HTTPError(400, f"Invalid structure or content for {name}: expected a JSON list of objects")
        return value

    def refuse_set(self, name: str, default: Any, why: str) -> None:
        """Refuse a field kern does not support when it is given a value other than its default."""
        value = self.fields.get(name)
        if value is not None and str(value).strip().lower() != str(default).lower():
            raise HTTPError(400, f"{name}={value!r} is not supported by kern's AgentOS: {why}")


async def send_events(request: web.Request, events: AsyncIterator[Any]) -> web.StreamResponse:
    """Stream run events as server-sent events: `event: <name>` and `data: <the event as JSON>` each."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    try:
        async for event in events:
            data = event.to_dict() if callable(getattr(event, "to_dict", None)) else to_jsonable(event)
            name = data.get("event", type(event).__name__) if isinstance(data, dict) else type(event).__name__
            await response.write(f"event: {name}\ndata: {json.dumps(to_jsonable(data))}\n\n".encode())
    except Exception as exc:  # the stream has started: the error becomes the last event
        body = json.dumps({"event": "RunError", "content": f"{type(exc).__name__}: {exc}"})
        await response.write(f"event: RunError\ndata: {body}\n\n".encode())
    await response.write_eof()
    return response
