"""``/v1/workspaces/{id}/provision-env``: the one route that returns secret values.

Only ``admin`` and the org's ``provisioner`` may call it. The response is marked
``Cache-Control: no-store``; the values are never logged (the access log has no bodies).
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Path
from starlette.responses import JSONResponse, Response

from llmbilling.api.access import readable_workspace, require
from llmbilling.api.dependencies import AppMetrics, Audit, Caller, Context
from llmbilling.api.links import PROVISION_ENV_LINKS
from llmbilling.api.problems import problem_responses
from llmbilling.api.schemas import ProvisionedEnv, ProvisionRequest
from llmbilling.service.provision import provision_workspace

router = APIRouter(prefix="/v1/workspaces", tags=["provisioning"])


@router.post(
    "/{workspace_id}/provision-env",
    summary="Decide, build the container env (spec §4), record the provision",
    response_model=ProvisionedEnv,
    responses={
        200: {"links": PROVISION_ENV_LINKS},
        **problem_responses(400, 401, 403, 404, 409, 422, 500, 503),
    },
)
def provision_env(
    workspace_id: Annotated[UUID, Path(description="Workspace id (UUID).")],
    context: Context,
    caller: Caller,
    audit: Audit,
    metrics: AppMetrics,
    request: Annotated[ProvisionRequest | None, Body()] = None,
) -> Response:
    workspace = readable_workspace(context, caller, workspace_id)
    require(caller.can_provision(workspace.org_id), "provisioning this org's workspaces")
    result = provision_workspace(
        context,
        workspace_id,
        request_model=None if request is None else request.model,
        audit_context=audit,
    )
    metrics.count_decision(result.provision.decision)
    return JSONResponse(
        {**result.public_summary(), "env": dict(result.provision.env)},
        headers={"Cache-Control": "no-store"},
    )
