"""The request body limit: a body larger than :data:`MAX_REQUEST_BODY_BYTES` is refused with a
413 problem before anything parses it.

Every body this service accepts is small (a mode, a model, a policy or registry document of a
few KiB, a console form), so 64 KiB leaves room for any honest request while bounding what a
hostile one can make the JSON parser, the form parser or the validators chew on. A declared
``Content-Length`` over the limit is refused without reading a byte of the body; a body sent
without one (chunked) is read up to the limit and refused as soon as it goes over.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmbilling.errors import ErrorCode

MAX_REQUEST_BODY_BYTES = 64 * 1024
REQUEST_TOO_LARGE_CODE = ErrorCode.REQUEST_TOO_LARGE


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
