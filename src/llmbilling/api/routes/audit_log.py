"""``/v1/audit``: the audit log, newest first, filtered and cursor-paginated.

An org-scoped token sees its own org's entries only; asking for another org is a 404.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from starlette.responses import JSONResponse, Response

from llmbilling.api.access import require_readable_org
from llmbilling.api.dependencies import Caller, Context
from llmbilling.api.links import AUDIT_LINKS
from llmbilling.api.problems import problem_responses
from llmbilling.api.schemas import AuditPage, Rfc3339DateTime
from llmbilling.service import audit
from llmbilling.service.tokens import Scope

router = APIRouter(prefix="/v1", tags=["audit"])
MAX_PAGE_SIZE = 500
CURSOR_PATTERN = r"^[1-9][0-9]{0,17}$"


@router.get(
    "/audit",
    summary="Audit entries, newest first",
    response_model=AuditPage,
    responses={200: {"links": AUDIT_LINKS}, **problem_responses(400, 401, 404, 500, 503)},
)
def read_audit_log(
    context: Context,
    caller: Caller,
    org_id: Annotated[UUID | None, Query(description="Only entries of this org.")] = None,
    workspace_id: Annotated[
        UUID | None, Query(description="Only entries of this workspace.")
    ] = None,
    since: Annotated[
        Rfc3339DateTime | None,
        Query(description="Entries at or after this time (RFC 3339, with offset)."),
    ] = None,
    until: Annotated[
        Rfc3339DateTime | None,
        Query(description="Entries before this time (RFC 3339, with offset)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = 100,
    cursor: Annotated[
        str | None,
        Query(description="`next_cursor` of the previous page (opaque).", pattern=CURSOR_PATTERN),
    ] = None,
) -> Response:
    if org_id is not None:
        require_readable_org(caller, org_id)
    # Every scope but admin is confined to its own org, whatever the filters say.
    scoped_org = org_id if caller.scope is Scope.ADMIN else caller.org_id
    found = audit.list_entries(
        context,
        org_id=scoped_org,
        workspace_id=workspace_id,
        since=since,
        until=until,
        before_id=None if cursor is None else int(cursor),
        limit=limit + 1,
    )
    page = found[:limit]
    body = {
        "items": [entry.to_dict() for entry in page],
        "next_cursor": str(page[-1].id) if len(found) > limit else None,
    }
    return JSONResponse(body)
