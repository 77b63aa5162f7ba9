"""``/v1/workspaces/{id}/llm-billing-mode``: the decision (GET) and the override (PUT, DELETE).

The GET answers even when the store does not: the ``constant_fallback`` decision with its
error, and no ``ETag`` (nothing stored was read). Writes honour ``If-Match``.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Path, Request
from starlette.responses import Response

from llmbilling.api.access import readable_workspace, require
from llmbilling.api.dependencies import (
    AppMetrics,
    Audit,
    Caller,
    Context,
    context_of,
    metrics_of,
    reader_of,
)
from llmbilling.api.etags import IfMatch, decision_etag
from llmbilling.api.links import DECISION_READ_LINKS, DECISION_WRITE_LINKS
from llmbilling.api.observability import Metrics
from llmbilling.api.problems import problem_responses
from llmbilling.api.schemas import Decision, SetOverride
from llmbilling.errors import PreconditionFailedError, StoreUnavailableError, WorkspaceNotFoundError
from llmbilling.service import admin
from llmbilling.service.context import ServiceContext
from llmbilling.service.resolve import (
    DecisionVersion,
    StoredDecision,
    decision_json,
    read_decision,
    read_decision_on_loop,
)

router = APIRouter(prefix="/v1/workspaces", tags=["decisions"])
PATH = "/{workspace_id}/llm-billing-mode"

WorkspaceId = Annotated[UUID, Path(description="Workspace id (UUID).")]
IfMatchHeader = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description="The ETag of the decision you read: the write happens only if it is current.",
    ),
]
_ETAG_HEADER: dict[str, Any] = {
    "ETag": {
        "description": "Changes whenever the decision or its stored rows change"
        " (absent on a constant_fallback answer).",
        "schema": {"type": "string"},
    }
}
_WRITE_RESPONSES = problem_responses(400, 401, 403, 404, 412, 500, 503)


@router.get(
    PATH,
    summary="The workspace's decision record, with its trace",
    response_model=Decision,
    responses={
        200: {"headers": _ETAG_HEADER, "links": DECISION_READ_LINKS},
        **problem_responses(400, 401, 404, 500, 503),
    },
)
async def get_decision(workspace_id: WorkspaceId, caller: Caller, request: Request) -> Response:
    # The hottest route: on the event loop (the reader needs no thread, the rest is CPU work),
    # taking what it needs from the request rather than through three more dependencies.
    context = context_of(request)
    stored = await read_decision_on_loop(context, reader_of(request), workspace_id)
    # An unreadable store tells us nothing about the workspace, so nothing can leak: the
    # fallback answer is the same for every id.
    if stored.org_id is not None and not caller.can_read(stored.org_id):
        raise WorkspaceNotFoundError(workspace_id)
    return _decision_response(stored, metrics_of(request))


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
) -> Response:
    workspace = readable_workspace(context, caller, workspace_id)
    require(caller.can_write(workspace.org_id), "changing this workspace's override")
    admin.parse_override(body.mode)
    expected = _expected_version(context, workspace_id, IfMatch.parse(if_match))
    admin.set_override(
        context, workspace_id, body.mode, audit_context=audit, expected_version=expected
    )
    return _decision_response(read_decision(context, workspace_id), metrics)


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
) -> Response:
    workspace = readable_workspace(context, caller, workspace_id)
    require(caller.can_write(workspace.org_id), "changing this workspace's override")
    expected = _expected_version(context, workspace_id, IfMatch.parse(if_match))
    admin.set_override(context, workspace_id, None, audit_context=audit, expected_version=expected)
    return _decision_response(read_decision(context, workspace_id), metrics)


def _expected_version(
    context: ServiceContext, workspace_id: UUID, if_match: IfMatch | None
) -> DecisionVersion | None:
    """The version the write must find (compare-and-set), or None for an unconditional one."""
    if if_match is None or if_match.any_version:
        return None
    listed = if_match.decision_versions()
    if len(listed) == 1:
        return listed[0]
    if listed:
        # Several tags: the write must find whichever of them is current.
        current = read_decision(context, workspace_id).version
        if current is None:
            raise StoreUnavailableError("the decision could not be read to compare If-Match")
        if current in listed:
            return current
    raise PreconditionFailedError(f"the decision of workspace {workspace_id}")


def _decision_response(stored: StoredDecision, metrics: Metrics) -> Response:
    metrics.count_decision(stored.decision)
    body = decision_json(stored.decision)
    headers = {}
    if stored.state is not None:
        headers["ETag"] = decision_etag(DecisionVersion.of_record(stored.state, body))
    return Response(body, media_type="application/json", headers=headers)
