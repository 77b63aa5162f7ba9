"""``/ofrep/v1``: the OpenFeature Remote Evaluation Protocol (0.3.0) over the billing decision.

- ``POST /ofrep/v1/evaluate/flags/{key}``: one flag (server-side providers).
- ``POST /ofrep/v1/evaluate/flags``: every flag for one context, with ``ETag`` and
  ``If-None-Match`` → 304, and ``eventStreams`` naming the change stream.
- ``GET /ofrep/v1/event-stream``: SSE (ADR-0008): ``refetchEvaluation`` whenever a decision the
  token may read may have changed.

Held to the OFREP document (``openapi.yaml`` of the spec), not to ours: these routes are left
out of ``/openapi.json``, whose error bodies are RFC 9457 problems, while OFREP's evaluation
failures have their own shape (``errorCode``, ``errorDetails``). Authentication and scopes
are the API's (401/403 answer problem JSON, which OFREP leaves open). docs/OFREP.md maps
everything.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from starlette.convertors import Convertor, register_url_convertor
from starlette.responses import Response

from llmbilling.api.auth import Principal, Scope
from llmbilling.api.dependencies import Caller, DecisionCaller, context_of, metrics_of
from llmbilling.api.etags import none_match
from llmbilling.core.ofrep import (
    FLAG_KEYS,
    EvaluationFailure,
    bulk_body,
    bulk_etag,
    check_last_modified,
    evaluate_all,
    evaluate_flag,
    unknown_flag,
)
from llmbilling.service.ofrep import (
    TargetDecision,
    decide_target,
    parse_evaluation_request,
    watch_scope,
)


class FlagKeyConvertor(Convertor[str]):
    """Any flag key, empty or holding ``/`` or a line break (Starlette's ``path`` stops at a
    line break): every key reaches the route, so an unknown one is OFREP's 404
    ``FLAG_NOT_FOUND``, never the API's "no route" problem."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("ofrep_flag_key", FlagKeyConvertor())

router = APIRouter(prefix="/ofrep/v1", tags=["ofrep"], include_in_schema=False)
EVENT_STREAM_PATH = "/ofrep/v1/event-stream"
# How long an SSE client waits before reconnecting after the stream drops (milliseconds).
RECONNECT_MILLISECONDS = 1000
# A stream ends after this long and the client reconnects (SSE's own reconnection): the token
# is then checked again (a revoked one stops hearing within this bound), and a server shutting
# down, which waits for open responses to end, waits at most this long.
STREAM_LIFETIME_SECONDS = 15.0
_JSON = "application/json"
_REFETCH = json.dumps({"type": "refetchEvaluation"}, separators=(",", ":"))
# Event ids: unique within this process run (the nonce), in order (the counter). There is no
# replay: a reconnecting provider re-fetches in full, as ADR-0008 requires of it anyway.
_STREAM_RUN = secrets.token_hex(4)
_event_numbers = itertools.count(1)


def _failure(status: int, failure: EvaluationFailure, key: str | None) -> Response:
    return Response(json.dumps(failure.to_dict(key)), status_code=status, media_type=_JSON)


async def _decide(request: Request, caller: Principal) -> TargetDecision | EvaluationFailure:
    target = parse_evaluation_request(await request.body())
    if isinstance(target, EvaluationFailure):
        return target
    decided = await decide_target(context_of(request), target, caller.can_read)
    if isinstance(decided, TargetDecision):
        metrics_of(request).count_decision(decided.decision)
    return decided


@router.post("/evaluate/flags/{key:ofrep_flag_key}")
async def evaluate_single_flag(key: str, request: Request, caller: DecisionCaller) -> Response:
    # The key is checked first: an unknown flag is 404 whatever the context.
    if key not in FLAG_KEYS:
        return _failure(404, unknown_flag(key), key)
    decided = await _decide(request, caller)
    if isinstance(decided, EvaluationFailure):
        return _failure(400, decided, key)
    evaluation = evaluate_flag(key, decided.decision)
    body = json.dumps(evaluation.to_dict(), ensure_ascii=False, separators=(",", ":"))
    return Response(body, media_type=_JSON)


IfNoneMatchHeader = Annotated[str | None, Header(alias="If-None-Match")]
LastModifiedQuery = Annotated[str | None, Query(alias="flagConfigLastModified")]


@router.post("/evaluate/flags")
async def evaluate_every_flag(
    request: Request,
    caller: DecisionCaller,
    if_none_match: IfNoneMatchHeader = None,
    last_modified: LastModifiedQuery = None,
) -> Response:
    # The refetch metadata of an SSE event (flagConfigEtag, flagConfigLastModified) needs no
    # use: every evaluation reads the store afresh, so it is never stale. Only its form is
    # checked, as the document defines it.
    malformed = check_last_modified(last_modified)
    if malformed is not None:
        return _failure(400, malformed, None)
    decided = await _decide(request, caller)
    if isinstance(decided, EvaluationFailure):
        return _failure(400, decided, None)
    body = bulk_body(evaluate_all(decided.decision), EVENT_STREAM_PATH)
    if not decided.from_store:
        # Nothing stored was read (constant_fallback): no tag, so no condition can hold.
        return Response(body, media_type=_JSON)
    etag = bulk_etag(body)
    if none_match(if_none_match, etag):
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type=_JSON, headers={"ETag": etag})


@router.get(EVENT_STREAM_PATH.removeprefix("/ofrep/v1"), response_class=EventSourceResponse)
async def event_stream(request: Request, caller: Caller) -> AsyncIterator[ServerSentEvent]:
    context = context_of(request)
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()

    def notify() -> None:
        # On the feed's or a committing thread: hand over to this stream's loop, never block.
        if not loop.is_closed():
            loop.call_soon_threadsafe(changed.set)

    unsubscribe = watch_scope(
        context, every_org=caller.scope is Scope.ADMIN, org_id=caller.org_id, notify=notify
    )
    # `serve` starts the feed; an app served otherwise (tests, a host's own ASGI server) starts
    # it with its first stream, after subscribing so that stream hears it come up (starting a
    # started feed does nothing).
    context.change_feed.start()
    ends_at = loop.time() + STREAM_LIFETIME_SECONDS
    try:
        # The first frame says the stream listens; changes from now on are told.
        yield ServerSentEvent(comment="listening", retry=RECONNECT_MILLISECONDS)
        while True:
            try:
                async with asyncio.timeout_at(ends_at):
                    await changed.wait()
            except TimeoutError:
                return
            changed.clear()
            # Changes that arrive together are told once: a refetch reads them all.
            yield ServerSentEvent(
                raw_data=_REFETCH, event="message", id=f"{_STREAM_RUN}-{next(_event_numbers)}"
            )
    finally:
        unsubscribe()
