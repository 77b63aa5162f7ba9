"""The request body limit: a body larger than :data:`MAX_REQUEST_BODY_BYTES` is refused with a
413 problem before anything parses it.

Every body this service accepts is small (a mode, a model, a policy or registry document of a
few KiB, a console form), so 64 KiB leaves room for any honest request while bounding what a
hostile one can make the JSON parser, the form parser or the validators chew on. A declared
``Content-Length`` over the limit is refused without reading a byte of the body; a body sent
without one (chunked) is read up to the limit and refused as soon as it goes over.

The request head limit: a request line and header block larger than
:data:`MAX_REQUEST_HEAD_BYTES`, or with more than :data:`MAX_REQUEST_HEADERS` header fields,
is refused with a 431 problem by the HTTP protocol itself (:func:`head_limited_protocol`,
which ``llmbilling serve`` hands to uvicorn). It has to live there: httptools has no limit of
its own and buffers a header until its end, so by the time an ASGI middleware could look at
the headers, a hostile client's 64 MB header would already be in memory.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, ClassVar

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from llmbilling.errors import ErrorCode

MAX_REQUEST_BODY_BYTES = 64 * 1024
REQUEST_TOO_LARGE_CODE = ErrorCode.REQUEST_TOO_LARGE
# An honest request carries a bearer token, a few standard headers and perhaps a proxy's
# forwarding headers: well under 8 KiB. 32 KiB and 100 fields leave room for any of those
# (and for a browser's cookies on the console) while bounding what one connection can make the
# server hold before the app sees it.
MAX_REQUEST_HEAD_BYTES = 32 * 1024
MAX_REQUEST_HEADERS = 100
HEADERS_TOO_LARGE_CODE = ErrorCode.HEADERS_TOO_LARGE
# How long a refused connection's further bytes are read and dropped before it is closed.
REFUSAL_LINGER_SECONDS = 1.0


class RequestBodyLimit:
    """ASGI middleware: buffer the body up to ``limit`` bytes, then hand the app a replay of
    it; answer ``too_large`` (a 413 problem body) instead when the body is larger."""

    def __init__(
        self,
        app: ASGIApp,
        too_large: dict[str, Any],
        on_refused: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.too_large = too_large
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = MAX_REQUEST_BODY_BYTES
        declared = _declared_length(scope)
        if declared > limit:
            await self._refuse(scope, receive, send)
            return
        if declared == 0 and not _has_header(scope, b"transfer-encoding"):
            # No Content-Length and no chunked coding: HTTP/1.1 says there is no body.
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away before the body was complete: nothing to answer.
                return
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.on_refused is not None:
            self.on_refused()
        response = JSONResponse(
            self.too_large,
            status_code=413,
            media_type="application/problem+json",
            # The rest of the body is never read: the connection cannot be reused.
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _declared_length(scope: Scope) -> int:
    """The declared ``Content-Length`` (0 when absent; over any limit when unparseable or
    repeated with different values: the server's parser normally refuses those first)."""
    values = {
        value.strip()
        for name, value in scope.get("headers", [])
        if name.lower() == b"content-length"
    }
    if not values:
        return 0
    if len(values) > 1:
        return MAX_REQUEST_BODY_BYTES + 1
    declared: bytes = next(iter(values))
    if not declared.isdigit():
        return MAX_REQUEST_BODY_BYTES + 1
    return int(declared)


def _has_header(scope: Scope, wanted: bytes) -> bool:
    return any(name.lower() == wanted for name, _ in scope.get("headers", []))


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields the buffered body once, then defers to the real one (for the
    disconnect message a streaming response waits on)."""
    pending: MutableMapping[str, bool] = {"sent": False}

    async def replayed() -> Message:
        if not pending["sent"]:
            pending["sent"] = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


@dataclass(frozen=True, slots=True)
class RequestHeadLimits:
    """The bounds of one request head: ``max_bytes`` of request line and header fields (as
    sent, each field counted as ``name: value`` with its line end), ``max_fields`` fields."""

    max_bytes: int = MAX_REQUEST_HEAD_BYTES
    max_fields: int = MAX_REQUEST_HEADERS

    def refusal(self) -> str:
        return (
            f"the request line and headers are larger than {self.max_bytes} bytes"
            f" or carry more than {self.max_fields} header fields"
        )


def head_limited_protocol(
    limits: RequestHeadLimits,
    too_large: dict[str, Any],
    on_refused: Callable[[], None] | None = None,
) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol, refusing a request head over ``limits`` with
    ``too_large`` (a 431 problem body) and closing the connection.

    A head is refused as soon as it is known to be over: a field beyond ``max_fields``, the
    fields parsed so far over ``max_bytes``, or — while a head is still incomplete — the bytes
    received for it over ``max_bytes``. So the server holds at most ``max_bytes`` plus one read
    (256 KiB) of any head, however long the client keeps sending."""
    body = json.dumps(too_large).encode()
    head = (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"content-type: application/problem+json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n"
    )

    class HeadLimitedProtocol(_HeadLimitedProtocol):
        pass

    HeadLimitedProtocol.limits = limits
    HeadLimitedProtocol.answer = (head, body)
    HeadLimitedProtocol.refusal_hooks = () if on_refused is None else (on_refused,)
    return HeadLimitedProtocol


class _HeadLimitedProtocol(HttpToolsProtocol):
    """The counting, over uvicorn's callbacks; configured by :func:`head_limited_protocol`.

    httptools hands a header over only once it is complete, so the callbacks alone cannot
    bound a header still arriving: :meth:`data_received` also counts the bytes of every read
    that leaves the current head incomplete. The read in which a head begins is not counted
    (part of it may belong to the request before), which can only under-count: nothing under
    the limit is refused."""

    limits: ClassVar[RequestHeadLimits] = RequestHeadLimits()
    answer: ClassVar[tuple[bytes, bytes]] = (b"", b"")
    # A tuple: a callable class attribute would be bound as a method.
    refusal_hooks: ClassVar[tuple[Callable[[], None], ...]] = ()

    _head_open = False
    _head_began_in_read = False
    _streamed = 0
    _parsed = 0
    _fields = 0
    _refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        open_before = self._head_open
        self._head_began_in_read = False
        super().data_received(data)
        if self._head_open and open_before and not self._head_began_in_read:
            self._streamed += len(data)
            if self._streamed > self.limits.max_bytes:
                self._refused = True
        if self._refused:
            self._refuse()

    def on_message_begin(self) -> None:
        if self._refused:
            return
        super().on_message_begin()
        self._head_open = True
        self._head_began_in_read = True
        self._streamed = 0
        self._fields = 0
        # The request line's fixed part ("GET " ... " HTTP/1.1\r\n") and the closing CRLF;
        # the method and target are added when the head is complete.
        self._parsed = 14

    def on_url(self, url: bytes) -> None:
        if self._refused:
            return
        super().on_url(url)
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        self._fields += 1
        if self._fields > self.limits.max_fields:
            self._refused = True
            return
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_open = False
        if not self._refused:
            self._count(len(self.parser.get_method()))
        if not self._refused:
            super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def _count(self, size: int) -> None:
        self._parsed += size
        if self._parsed > self.limits.max_bytes:
            self._refused = True

    def _refuse(self) -> None:
        if self.transport.is_closing():
            return
        for hook in self.refusal_hooks:
            hook()
        if self.cycle is None or self.cycle.response_complete:
            head, body = self.answer
            defaults = b"".join(
                name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers
            )
            self.transport.write(head + defaults + b"\r\n" + body)
            # Half-close, read and drop what the client is still sending for a moment, then
            # close: closing at once with unread bytes makes the kernel send a reset, which can
            # destroy the 431 before the client reads it.
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.loop.call_later(REFUSAL_LINGER_SECONDS, self.transport.close)
            return
        # A response to an earlier pipelined request is still being written: a second one
        # cannot be slipped in, the connection just ends.
        self.transport.close()
