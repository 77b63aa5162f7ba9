"""``/v1/whatif``: preview every workspace's decision under a proposed policy or registry.

A what-if is a background job (see :mod:`llmbilling.service.whatif_jobs`): ``POST`` starts it
and answers 202 with its id; ``GET /v1/whatif/{id}`` shows progress and, once done, the
report. Starting one needs write access (an ``org_admin`` for one org, ``admin`` for the
whole fleet); reading one needs read access to its org (the whole fleet's: ``admin``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar, cast
from uuid import UUID

from fastapi import APIRouter, Path, Request
from starlette.responses import JSONResponse, Response

from llmbilling.api.access import require, require_readable_org
from llmbilling.api.auth import Principal, Scope
from llmbilling.api.dependencies import Audit, Caller, Context
from llmbilling.api.links import WHATIF_JOB_LINKS, WHATIF_STARTED_LINKS
from llmbilling.api.problems import problem_responses
from llmbilling.api.schemas import WhatIfJob, WhatIfRequest
from llmbilling.core.policy import compile_policy
from llmbilling.core.registry import compile_registry
from llmbilling.errors import DocumentError, ProposalInvalidError, WhatIfJobNotFoundError
from llmbilling.service import admin
from llmbilling.service.whatif import proposed_configuration
from llmbilling.service.whatif_jobs import WhatIfJob as Job
from llmbilling.service.whatif_jobs import WhatIfJobs

router = APIRouter(prefix="/v1/whatif", tags=["what-if"])
Compiled = TypeVar("Compiled")


def jobs_of(request: Request) -> WhatIfJobs:
    return cast(WhatIfJobs, request.app.state.whatif_jobs)


@router.post(
    "",
    summary="Start a what-if of the fleet (or one org) under a proposed policy or registry",
    status_code=202,
    response_model=WhatIfJob,
    responses={
        202: {"links": WHATIF_STARTED_LINKS},
        **problem_responses(400, 401, 403, 404, 422, 429, 500, 503),
    },
)
def start_whatif(
    body: WhatIfRequest, request: Request, context: Context, caller: Caller, audit: Audit
) -> Response:
    if body.org_id is None:
        require(caller.scope is Scope.ADMIN, "a what-if of the whole fleet")
    else:
        require_readable_org(caller, body.org_id)
        admin.get_org(context, body.org_id)
        require(caller.can_write(body.org_id), "a what-if of this org")
    policy = None if body.policy is None else _compiled("policy", compile_policy, body.policy)
    registry = (
        None if body.registry is None else _compiled("registry", compile_registry, body.registry)
    )
    job = jobs_of(request).start(
        proposed_configuration(context, policy, registry), org_id=body.org_id, audit_context=audit
    )
    return JSONResponse(
        job_document(job, jobs_of(request)),
        status_code=202,
        headers={"Location": f"/v1/whatif/{job.id}"},
    )


@router.get(
    "/{job_id}",
    summary="A what-if job: its progress and, once it has succeeded, its report",
    response_model=WhatIfJob,
    responses={200: {"links": WHATIF_JOB_LINKS}, **problem_responses(400, 401, 404, 500)},
)
def get_whatif(
    job_id: Annotated[UUID, Path(description="What-if job id (UUID).")],
    request: Request,
    caller: Caller,
) -> Response:
    jobs = jobs_of(request)
    job = jobs.get(job_id)
    if job is None or not _readable(caller, job):
        raise WhatIfJobNotFoundError(job_id)
    return JSONResponse(job_document(job, jobs))


def job_document(job: Job, jobs: WhatIfJobs | None) -> dict[str, Any]:
    """The wire shape of a job; with ``jobs``, its report once there is one."""
    report = None if jobs is None else jobs.report(job.id)
    return {
        "id": str(job.id),
        "state": job.state.value,
        "org_id": None if job.org_id is None else str(job.org_id),
        "done": job.done,
        "total": job.total,
        "created_at": job.created_at.isoformat(),
        "finished_at": None if job.finished_at is None else job.finished_at.isoformat(),
        "error": None
        if job.error_code is None
        else {"code": job.error_code, "message": job.error_message or ""},
        "report": None if report is None else report.to_document(),
    }


def _readable(caller: Principal, job: Job) -> bool:
    return caller.scope is Scope.ADMIN if job.org_id is None else caller.can_read(job.org_id)


def _compiled(
    field: str, compile_document: Callable[[Mapping[str, Any], str], Compiled], document: Any
) -> Compiled:
    """A proposed document, compiled; its problems are a 422 naming the field and the path."""
    try:
        return compile_document(document, f"request body: {field}")
    except DocumentError as error:
        where = f"{field}.{error.path}" if error.path else field
        raise ProposalInvalidError(where, error.problem) from None
