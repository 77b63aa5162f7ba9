"""``/v1/orgs/{id}/workspaces``: an org's workspaces with their decisions, a page at a time."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query
from starlette.responses import JSONResponse, Response

from llmbilling.api.access import require_readable_org
from llmbilling.api.dependencies import AppMetrics, Caller, Context
from llmbilling.api.links import ORG_WORKSPACES_LINKS
from llmbilling.api.problems import problem_responses
from llmbilling.api.schemas import WorkspacePage
from llmbilling.core.modes import MODE_VALUES
from llmbilling.service import admin
from llmbilling.service.admin import PROVISIONING_FILTER_VALUES, SOURCE_VALUES

router = APIRouter(prefix="/v1/orgs", tags=["orgs"])
MAX_PAGE_SIZE = 500


@router.get(
    "/{org_id}/workspaces",
    summary="The org's workspaces with their decisions, in id order",
    response_model=WorkspacePage,
    responses={
        200: {"links": ORG_WORKSPACES_LINKS},
        **problem_responses(400, 401, 404, 500, 503),
    },
)
def list_org_workspaces(
    org_id: Annotated[UUID, Path(description="Organization id (UUID).")],
    context: Context,
    caller: Caller,
    metrics: AppMetrics,
    mode: Annotated[
        str | None,
        Query(
            description="Only workspaces whose DECIDED mode is this.",
            json_schema_extra={"enum": list(MODE_VALUES)},
        ),
    ] = None,
    source: Annotated[
        str | None,
        Query(
            description="Only workspaces decided by this rung.",
            json_schema_extra={"enum": list(SOURCE_VALUES)},
        ),
    ] = None,
    provisioning: Annotated[
        str | None,
        Query(
            description="Only workspaces whose provisioning verdict is this: `ok`, `failing`"
            " (any other verdict) or one code.",
            json_schema_extra={"enum": list(PROVISIONING_FILTER_VALUES)},
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = 100,
    cursor: Annotated[
        UUID | None, Query(description="`next_cursor` of the previous page (opaque).")
    ] = None,
) -> Response:
    require_readable_org(caller, org_id)
    admin.get_org(context, org_id)
    found = admin.list_workspaces(
        context,
        org_id=org_id,
        mode=mode,
        source=source,
        provisioning=provisioning,
        after=cursor,
        limit=limit + 1,
    )
    page = found[:limit]
    for item in page:
        metrics.count_decision(item.decision)
    body = {
        "items": [
            {"workspace": item.workspace.to_dict(), "decision": item.decision.to_dict()}
            for item in page
        ],
        "next_cursor": str(page[-1].workspace.id) if len(found) > limit else None,
    }
    return JSONResponse(body)
