"""``/v1/workspaces/{id}/llm-billing-mode``: the decision (GET) and the override (PUT, DELETE).

The GET answers even when the store does not: the ``constant_fallback`` decision with its
error, and no ``ETag`` (nothing stored was read). Writes honour ``If-Match``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Path, Request
from starlette.responses import Response

from llmbilling.api.access import require
from llmbilling.api.auth import Principal
from llmbilling.api.dependencies import (
    AppMetrics,
    Audit,
    Caller,
    Context,
    DecisionCaller,
    context_of,
    metrics_of,
)
from llmbilling.api.etags import (
    CONDITION_HEADER_PATTERN,
    ETAG_HEADER_PATTERN,
    accepted_decision_versions,
    decision_etag,
    none_match,
)
from llmbilling.api.links import DECISION_READ_LINKS, DECISION_WRITE_LINKS
from llmbilling.api.observability import Metrics
from llmbilling.api.problems import problem_responses
from llmbilling.api.routes.plans import AcknowledgeDangersHeader
from llmbilling.api.schemas import Decision, SetOverride
from llmbilling.errors import WorkspaceNotFoundError
from llmbilling.service import admin, plans
from llmbilling.service.audit import AuditContext
from llmbilling.service.context import ServiceContext
from llmbilling.service.resolve import (
    DecisionVersion,
    StoredDecision,
    read_decision_on_loop,
)

router = APIRouter(prefix="/v1/workspaces", tags=["decisions"])
PATH = "/{workspace_id}/llm-billing-mode"

WorkspaceId = Annotated[UUID, Path(description="Workspace id (UUID).")]
IfMatchHeader = Annotated[
    str | None,
    Header(
        alias="If-Match",
        pattern=CONDITION_HEADER_PATTERN,
        description="The ETag of the decision you read: the write happens only if it is current.",
    ),
]
_ETAG_HEADER: dict[str, Any] = {
    "ETag": {
        "description": "Changes whenever the decision or its stored rows change"
        " (absent on a constant_fallback answer).",
        "schema": {"type": "string", "pattern": ETAG_HEADER_PATTERN},
    }
}
IfNoneMatchHeader = Annotated[
    str | None,
    Header(
        alias="If-None-Match",
        pattern=CONDITION_HEADER_PATTERN,
        description="ETags you hold: 304 Not Modified when one is current (weak comparison).",
    ),
]
CacheControlHeader = Annotated[
    str | None,
    Header(
        alias="Cache-Control",
        description="`no-cache`: decide from the store as it is now, never from this"
        " replica's in-memory inputs (which another replica's commit reaches when the change"
        " feed delivers it, typically within milliseconds).",
    ),
]
_WRITE_RESPONSES = problem_responses(400, 401, 403, 404, 409, 412, 500, 503)


def asks_no_cache(cache_control: str | None) -> bool:
    """Whether a ``Cache-Control`` request header holds ``no-cache`` (RFC 9111 §5.2.1.4: among
    other directives, in any case, with or without an argument)."""
    if cache_control is None:
        return False
    directives = (part.strip().lower() for part in cache_control.split(","))
    return any(directive.split("=", 1)[0] == "no-cache" for directive in directives)


@router.get(
    PATH,
    summary="The workspace's decision record, with its trace",
    response_model=Decision,
    responses={
        200: {"headers": _ETAG_HEADER, "links": DECISION_READ_LINKS},
        304: {"description": "If-None-Match named the current ETag.", "headers": _ETAG_HEADER},
        **problem_responses(400, 401, 404, 500, 503),
    },
)
async def get_decision(
    workspace_id: WorkspaceId,
    caller: DecisionCaller,
    request: Request,
    if_none_match: IfNoneMatchHeader = None,
    cache_control: CacheControlHeader = None,
) -> Response:
    # The hottest route: on the event loop (the reader needs no thread, the rest is CPU work),
    # taking what it needs from the request rather than through three more dependencies.
    context = context_of(request)
    stored = await read_decision_on_loop(
        context, workspace_id, from_store=asks_no_cache(cache_control)
    )
    # An unreadable store tells us nothing about the workspace, so nothing can leak: the
    # fallback answer is the same for every id.
    if stored.org_id is not None and not caller.can_read(stored.org_id):
        raise WorkspaceNotFoundError(workspace_id)
    return _decision_response(stored, metrics_of(request), if_none_match)


@router.put(
    PATH,
    summary="Set the workspace override (exact mode)",
    response_model=Decision,
    responses={200: {"headers": _ETAG_HEADER, "links": DECISION_WRITE_LINKS}, **_WRITE_RESPONSES},
)
def set_override(
    workspace_id: WorkspaceId,
    body: SetOverride,
    context: Context,
    caller: Caller,
    audit: Audit,
    metrics: AppMetrics,
    if_match: IfMatchHeader = None,
    acknowledge_dangers: AcknowledgeDangersHeader = None,
) -> Response:
    return _write_override(
        context,
        caller,
        audit,
        metrics,
        workspace_id,
        body.mode,
        if_match,
        reason=body.reason,
        expires_at=body.expires_at,
        acknowledged=acknowledge_dangers,
    )


@router.delete(
    PATH,
    summary="Clear the workspace override (inherit)",
    response_model=Decision,
    responses={200: {"headers": _ETAG_HEADER, "links": DECISION_WRITE_LINKS}, **_WRITE_RESPONSES},
)
def clear_override(
    workspace_id: WorkspaceId,
    context: Context,
    caller: Caller,
    audit: Audit,
    metrics: AppMetrics,
    if_match: IfMatchHeader = None,
    acknowledge_dangers: AcknowledgeDangersHeader = None,
) -> Response:
    return _write_override(
        context,
        caller,
        audit,
        metrics,
        workspace_id,
        None,
        if_match,
        acknowledged=acknowledge_dangers,
    )


def _write_override(
    context: ServiceContext,
    caller: Principal,
    audit: AuditContext,
    metrics: Metrics,
    workspace_id: UUID,
    mode: str | None,
    if_match: str | None,
    *,
    reason: str | None = None,
    expires_at: datetime | None = None,
    acknowledged: str | None = None,
) -> Response:
    def authorize(org_id: UUID) -> None:
        # Applied by the write, under the row lock, to the workspace's org.
        if not caller.can_read(org_id):
            raise WorkspaceNotFoundError(workspace_id)
        require(caller.can_write(org_id), "changing this workspace's override")

    written = admin.set_override(
        context,
        workspace_id,
        mode,
        audit_context=audit,
        expected_versions=accepted_decision_versions(if_match),
        authorize=authorize,
        reason=reason,
        expires_at=expires_at,
        # The danger guard (when the deployment sets one) runs after authorize, under the lock.
        under_lock=plans.guard_override(context, workspace_id, mode, expires_at, acknowledged),
    )
    return _decision_response(written, metrics)


def _decision_response(
    stored: StoredDecision, metrics: Metrics, if_none_match: str | None = None
) -> Response:
    metrics.count_decision(stored.decision)
    body = stored.decision.to_json()
    if stored.state is None:
        # Nothing stored was read: no tag, so no condition can hold.
        return Response(body, media_type="application/json")
    etag = decision_etag(DecisionVersion.of_record(stored.state, body))
    if none_match(if_none_match, etag):
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type="application/json", headers={"ETag": etag})
