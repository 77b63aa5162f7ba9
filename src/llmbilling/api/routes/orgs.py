"""``/v1/orgs``: the organizations a token may read, by name, a keyset page at a time."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, Response

from llmbilling.api.dependencies import Caller, Context
from llmbilling.api.links import ORGS_LINKS
from llmbilling.api.problems import problem_responses
from llmbilling.api.schemas import OrgPage
from llmbilling.core.modes import recognize_normalized_mode
from llmbilling.service import orgs
from llmbilling.service.orgs import OrgSummary

router = APIRouter(prefix="/v1/orgs", tags=["orgs"])
MAX_PAGE_SIZE = 500

_LINK_HEADER = {
    "Link": {
        "description": 'The next page, as `<url>; rel="next"` (absent on the last page).',
        "schema": {"type": "string"},
    }
}


@router.get(
    "",
    summary="The organizations this token may read (an admin: all; others: their own), by name",
    response_model=OrgPage,
    responses={
        200: {"headers": _LINK_HEADER, "links": ORGS_LINKS},
        **problem_responses(400, 401, 404, 500, 503),
    },
)
def list_orgs(
    request: Request,
    context: Context,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = 100,
    after: Annotated[
        UUID | None,
        Query(
            description="`next_cursor` of the previous page: the id of its last org (an org"
            " this token cannot see is not found)."
        ),
    ] = None,
) -> Response:
    page = orgs.list_orgs(context, only=caller.org_id, after=after, limit=limit)
    next_cursor = None if page.next_after is None else str(page.next_after)
    headers = {}
    if next_cursor is not None:
        query = urlencode({"limit": limit, "after": next_cursor})
        headers["Link"] = f'<{request.url.path}?{query}>; rel="next"'
    body = {"items": [_org_item(org) for org in page.orgs], "next_cursor": next_cursor}
    return JSONResponse(body, headers=headers)


def _org_item(org: OrgSummary) -> dict[str, object]:
    raw = org.billing_mode_default_raw
    recognized = None if raw is None else recognize_normalized_mode(raw)
    return {
        "id": str(org.id),
        "name": org.name,
        "llm_billing_mode_default": {
            "raw": raw,
            "recognized": None if recognized is None else recognized.value,
        },
        "workspace_count": org.workspace_count,
    }
