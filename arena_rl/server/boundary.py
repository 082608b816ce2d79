"""The one gate every request body passes before a route sees it: bounded, valid JSON only.

Whatever an agent sends may end up stored (decision log, heartbeat metadata, webhooks) and is
echoed back by later reads, so the server must never keep a value it cannot encode again. A
hostile body used to poison the state for good: 900-deep ``signals`` made every later
``GET /decisions`` a ``RecursionError``, a lone surrogate in a key a ``UnicodeEncodeError``, and a
chunked body skipped the size limit. So, in one pass, before anything else runs:

* the body is read as a stream and refused (413) past :data:`MAX_BODY_BYTES`, with or without
  ``Content-Length``;
* it must be strict UTF-8 JSON (400 otherwise, ``NaN``/``Infinity`` included: they are not JSON,
  and the live platform's parser refuses them too);
* it must stay within :data:`MAX_DEPTH` levels and :data:`MAX_VALUES` values, every number must
  be a finite double, every string valid Unicode (no lone surrogates) (422 otherwise).

Errors name the problem and where (``signals.a.b``), so an agent's author can fix the call.
:class:`BoundaryMiddleware` also turns an unexpected exception into a JSON 500 without dropping
the keep-alive connection (uvicorn closes it when an exception escapes the app).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

MAX_BODY_BYTES = 1 << 20
MAX_DEPTH = 32
"""Objects and arrays nested deeper than this are refused (the SDK's own payloads are 3 deep)."""
MAX_VALUES = 20_000
"""Values (containers, keys' values, leaves) in one body."""
MAX_INT_DIGITS = 400
"""Longer integer literals are refused before Python converts them (quadratic, capped at 4300)."""
DRAIN_LIMIT_BYTES = 16 * MAX_BODY_BYTES
"""How much of an oversized body is read and discarded so the client can read its 413; past
this the connection is simply closed."""

logger = logging.getLogger("arena_rl.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyError(ValueError):
    """A body refused at the boundary: the HTTP status and a message naming the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class _Refused:
    """A literal the parser met but must not keep; reported with its path by the walk."""

    __slots__ = ("reason", "status")

    def __init__(self, reason: str, status: int = 422) -> None:
        self.reason, self.status = reason, status


def _constant(name: str) -> Any:
    return _Refused(f"{name} is not JSON (send a finite number)", 400)


def _float(text: str) -> Any:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        return _Refused(f"number {text[:40]} is out of range (finite doubles only)")
    return value


def _int(text: str) -> Any:
    if len(text) > MAX_INT_DIGITS:
        return _Refused(f"integer of {len(text)} digits is out of range (finite doubles only)")
    value = int(text)
    try:
        float(value)
    except OverflowError:
        return _Refused(f"integer {text[:40]}... is out of range (finite doubles only)")
    return value


_DECODER = json.JSONDecoder(parse_float=_float, parse_int=_int, parse_constant=_constant)


def _where(path: list[str | int]) -> str:
    shown = ".".join(str(p) if isinstance(p, int) else p[:40] for p in path[:8])
    return (shown + (".…" if len(path) > 8 else "")) or "body"


def _valid_text(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_value(value: Any) -> None:
    """Raise :class:`BodyError` (422) unless ``value`` is bounded, finite and valid Unicode.

    Iterative on purpose: the point is to refuse depth, not to recurse into it.
    """
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    seen = 0
    while stack:
        item, path = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise BodyError(422, f"invalid JSON body: more than {MAX_VALUES} values")
        if isinstance(item, _Refused):
            raise BodyError(item.status, f"invalid JSON body: {_where(path)}: {item.reason}")
        if isinstance(item, str):
            if not _valid_text(item):
                raise BodyError(
                    422, f"invalid JSON body: {_where(path)}: string is not valid Unicode "
                    "(lone surrogate)"
                )  # fmt: skip
            continue
        if isinstance(item, dict | list) and len(path) >= MAX_DEPTH:
            raise BodyError(
                422, f"invalid JSON body: {_where(path)}: nested deeper than {MAX_DEPTH} levels"
            )
        if isinstance(item, dict):
            for key, child in item.items():
                if not _valid_text(key):
                    raise BodyError(
                        422, f"invalid JSON body: {_where(path)}: key {key!r} is not valid "
                        "Unicode (lone surrogate)"
                    )  # fmt: skip
                stack.append((child, [*path, key]))
        elif isinstance(item, list):
            stack.extend((child, [*path, i]) for i, child in enumerate(item))


def parse_body(raw: bytes) -> Any:
    """The JSON value of a request body, or :class:`BodyError` saying what is wrong with it."""
    if len(raw) > MAX_BODY_BYTES:
        raise BodyError(413, f"request body over {MAX_BODY_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(400, f"invalid JSON body: not UTF-8 (byte {exc.start})") from None
    try:
        value, end = _DECODER.raw_decode(text, _skip(text, 0))
    except json.JSONDecodeError as exc:
        raise BodyError(400, f"invalid JSON body: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise BodyError(422, f"invalid JSON body: nested deeper than {MAX_DEPTH} levels") from None
    if _skip(text, end) != len(text):
        raise BodyError(400, f"invalid JSON body: extra data at position {end}")
    check_value(value)
    return value


def _skip(text: str, pos: int) -> int:
    """The index of the first non-whitespace character at or after ``pos``."""
    while pos < len(text) and text[pos] in " \t\n\r":
        pos += 1
    return pos


async def _json_response(
    send: Send, status: int, payload: dict[str, Any], *, close: bool = False
) -> None:
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class BoundaryMiddleware:
    """Pure ASGI middleware: bounded bodies in, a JSON 500 out for any unexpected exception.

    Installed inside Starlette's error middleware, so an exception stops here and never reaches
    uvicorn (which would close the connection after the response). A body is read in full
    (it is at most :data:`MAX_BODY_BYTES`), checked by :func:`parse_body`, and replayed to the
    app unchanged.
    """

    def __init__(self, app: App, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            replay = await self._read(scope, receive)
        except BodyError as exc:
            payload = {"success": False, "error": exc.message}
            await _json_response(send, exc.status, payload, close=exc.status == 413)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, replay, tracked)
        except Exception as exc:
            logger.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if started:  # nothing sensible left to say on this connection
                raise
            payload = {"success": False, "error": f"internal error: {type(exc).__name__}"}
            await _json_response(send, 500, payload)

    async def _read(self, scope: Scope, receive: Receive) -> Receive:
        """Read and check the whole body; a ``receive`` that hands it to the app again."""
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                raise BodyError(400, "malformed Content-Length")
            if int(length) > self.max_body_bytes:
                if b"expect" not in headers:  # a client waiting for 100 Continue sent nothing
                    await self._drain(receive, 0)
                raise BodyError(413, f"request body over {self.max_body_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                return _replay_message(message)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                if message.get("more_body"):
                    await self._drain(receive, size)
                raise BodyError(413, f"request body over {self.max_body_bytes} bytes")
            chunks.append(chunk)
            more = bool(message.get("more_body"))
        body = b"".join(chunks)
        if body:
            parse_body(body)
        return _replay_body(body, receive)

    @staticmethod
    async def _drain(receive: Receive, size: int) -> None:
        """Read and drop the rest of an oversized body (bounded), so the 413 is readable."""
        while size <= DRAIN_LIMIT_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                return
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                return


def _replay_body(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # http.disconnect, when the app waits for it
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _replay_message(message: Message) -> Receive:
    async def replay() -> Message:
        return message

    return replay
