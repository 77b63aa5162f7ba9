"""``/v1/orgs/{id}/llm-billing-mode-default``: the org default, raw and recognized."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Path
from starlette.responses import JSONResponse, Response

from llmbilling.api.access import require, require_readable_org
from llmbilling.api.dependencies import Audit, Caller, Context
from llmbilling.api.etags import (
    CONDITION_HEADER_PATTERN,
    ETAG_HEADER_PATTERN,
    accepted_org_versions,
    none_match,
    org_etag,
)
from llmbilling.api.links import ORG_DEFAULT_READ_LINKS, ORG_DEFAULT_WRITE_LINKS
from llmbilling.api.problems import problem_responses
from llmbilling.api.routes.plans import AcknowledgeDangersHeader
from llmbilling.api.schemas import OrgDefault, SetOrgDefault
from llmbilling.service import admin, plans
from llmbilling.service.admin import OrgView

router = APIRouter(prefix="/v1/orgs", tags=["orgs"])
PATH = "/{org_id}/llm-billing-mode-default"

OrgId = Annotated[UUID, Path(description="Organization id (UUID).")]
IfMatchHeader = Annotated[
    str | None,
    Header(
        alias="If-Match",
        pattern=CONDITION_HEADER_PATTERN,
        description="The ETag of the org default you read: the write happens only if current.",
    ),
]
IfNoneMatchHeader = Annotated[
    str | None,
    Header(
        alias="If-None-Match",
        pattern=CONDITION_HEADER_PATTERN,
        description="ETags you hold: 304 Not Modified when one is current (weak comparison).",
    ),
]
_ETAG_HEADER: dict[str, Any] = {
    "ETag": {
        "description": "Changes with every write of the org.",
        "schema": {"type": "string", "pattern": ETAG_HEADER_PATTERN},
    }
}


@router.get(
    PATH,
    summary="The org default billing mode",
    response_model=OrgDefault,
    responses={
        200: {"headers": _ETAG_HEADER, "links": ORG_DEFAULT_READ_LINKS},
        304: {"description": "If-None-Match named the current ETag.", "headers": _ETAG_HEADER},
        **problem_responses(400, 401, 404, 500, 503),
    },
)
def get_org_default(
    org_id: OrgId, context: Context, caller: Caller, if_none_match: IfNoneMatchHeader = None
) -> Response:
    require_readable_org(caller, org_id)
    org = admin.get_org(context, org_id)
    etag = org_etag(org.row_version)
    if none_match(if_none_match, etag):
        return Response(status_code=304, headers={"ETag": etag})
    return _org_default_response(org)


@router.put(
    PATH,
    summary="Set (or, with null, remove) the org default",
    response_model=OrgDefault,
    responses={
        200: {"headers": _ETAG_HEADER, "links": ORG_DEFAULT_WRITE_LINKS},
        **problem_responses(400, 401, 403, 404, 409, 412, 500, 503),
    },
)
def set_org_default(
    org_id: OrgId,
    body: SetOrgDefault,
    context: Context,
    caller: Caller,
    audit: Audit,
    if_match: IfMatchHeader = None,
    acknowledge_dangers: AcknowledgeDangersHeader = None,
) -> Response:
    require_readable_org(caller, org_id)
    require(caller.can_write(org_id), "changing this org's default")
    org = admin.set_org_default(
        context,
        org_id,
        body.mode,
        audit_context=audit,
        expected_versions=accepted_org_versions(if_match),
        reason=body.reason,
        under_lock=plans.guard_org_default(context, org_id, body.mode, acknowledge_dangers),
    )
    return _org_default_response(org)


def _org_default_response(org: OrgView) -> Response:
    recognized = org.billing_mode_default
    body = {
        "org_id": str(org.id),
        "raw": org.billing_mode_default_raw,
        "recognized": None if recognized is None else recognized.value,
    }
    return JSONResponse(body, headers={"ETag": org_etag(org.row_version)})
