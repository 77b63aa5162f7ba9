"""``/v1/whatif``: preview every workspace's decision under a proposed policy or registry.

A what-if is a background job (see :mod:`llmbilling.service.whatif_jobs`): ``POST`` starts it
and answers 202 with its id; ``GET /v1/whatif/{id}`` shows progress and, once done, the
report; ``GET /v1/whatif`` lists the jobs the caller may read (jobs are stored: every replica
answers for every job, whichever replica started or runs it). Starting one needs write
access (an ``org_admin`` for one org, ``admin`` for the whole fleet); reading one needs read
access to its org (the whole fleet's: ``admin``).

A proposal is JSON or YAML (``Content-Type: application/yaml``): the same document either way,
YAML read within the document bounds (no anchors, aliases or tags; depth and node caps).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from email.message import Message
from typing import Annotated, Any, TypeVar, cast
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.responses import JSONResponse, Response

from llmbilling.api.access import require, require_readable_org
from llmbilling.api.auth import Principal, Scope
from llmbilling.api.dependencies import Audit, Caller, Context
from llmbilling.api.links import WHATIF_JOB_LINKS, WHATIF_STARTED_LINKS
from llmbilling.api.problems import problem_responses
from llmbilling.api.schemas import (
    WhatIfJob,
    WhatIfJobList,
    WhatIfRequest,
    whatif_request_schema,
)
from llmbilling.config.yaml_documents import parse_yaml_mapping
from llmbilling.core.policy import compile_policy
from llmbilling.core.registry import compile_registry
from llmbilling.errors import (
    DocumentError,
    InvalidInputError,
    ProposalInvalidError,
    WhatIfJobNotFoundError,
)
from llmbilling.service import admin
from llmbilling.service.whatif import proposed_configuration
from llmbilling.service.whatif_jobs import JobState, WhatIfJobs
from llmbilling.service.whatif_jobs import WhatIfJob as Job

router = APIRouter(prefix="/v1/whatif", tags=["what-if"])
Compiled = TypeVar("Compiled")


JSON_MEDIA_TYPE = "application/json"
YAML_MEDIA_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")
PROPOSAL_MEDIA_TYPES = (JSON_MEDIA_TYPE, *YAML_MEDIA_TYPES)


def jobs_of(request: Request) -> WhatIfJobs:
    return cast(WhatIfJobs, request.app.state.whatif_jobs)


async def proposal_body(request: Request) -> WhatIfRequest:
    """The body as a :class:`WhatIfRequest`, from JSON (the default when no ``Content-Type``
    is given) or YAML. Another media type is a 400 naming ``Content-Type`` and the allowed
    ones; YAML outside the document bounds a 422 ``PROPOSAL_INVALID`` naming ``body``."""
    media_type = _media_type(request.headers.get("content-type"))
    data = await request.body()
    if media_type in YAML_MEDIA_TYPES:
        document = _yaml_body(data)
    elif media_type is None or media_type == JSON_MEDIA_TYPE or media_type.endswith("+json"):
        try:
            document = json.loads(data)
        except (ValueError, RecursionError):
            # RecursionError: nested deeper than the JSON parser goes (far past the bounds).
            raise InvalidInputError("body", "is not valid JSON") from None
    else:
        raise InvalidInputError(
            "Content-Type", f"{media_type!r} is not a proposal's media type", PROPOSAL_MEDIA_TYPES
        )
    try:
        return WhatIfRequest.model_validate(document)
    except ValidationError as error:
        raise RequestValidationError(
            [{**problem, "loc": ("body", *problem["loc"])} for problem in error.errors()]
        ) from None


def _media_type(header: str | None) -> str | None:
    if not header:
        return None
    message = Message()
    message["content-type"] = header
    return message.get_content_type()


def _yaml_body(data: bytes) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError("body", "is not UTF-8 YAML") from None
    try:
        return parse_yaml_mapping(text, "request body", DocumentError)
    except DocumentError as error:
        where = f"{error.path}: " if error.path else ""
        raise ProposalInvalidError("body", f"{where}{error.problem}") from None


# Its documents' schemas are components (api/app.py adds them), so references point there.
_PROPOSAL_SCHEMA = whatif_request_schema()
_PROPOSAL_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The proposal as JSON, or as the same document in YAML"
        " (`Content-Type: application/yaml`; no anchors, aliases or tags).",
        "content": {
            media_type: {"schema": _PROPOSAL_SCHEMA} for media_type in PROPOSAL_MEDIA_TYPES
        },
    }
}


@router.get(
    "",
    summary="The what-if jobs this token may read, newest first",
    response_model=WhatIfJobList,
    responses=problem_responses(401, 500),
)
def list_whatif(request: Request, caller: Caller) -> Response:
    jobs = [job for job in readable_jobs(jobs_of(request), caller) if _readable(caller, job)]
    return JSONResponse({"jobs": [job_summary(job) for job in jobs]})


def readable_jobs(jobs: WhatIfJobs, reader: Principal) -> list[Job]:
    """The jobs ``reader`` may read, newest first: every job for an admin, else its org's
    (read as the org's rows, not every org's filtered)."""
    if reader.scope is Scope.ADMIN:
        return jobs.jobs()
    return [] if reader.org_id is None else jobs.jobs_of_org(reader.org_id)


@router.post(
    "",
    summary="Start a what-if of the fleet (or one org) under a proposed policy or registry",
    status_code=202,
    response_model=WhatIfJob,
    responses={
        202: {"links": WHATIF_STARTED_LINKS},
        **problem_responses(400, 401, 403, 404, 422, 429, 500, 503),
    },
    openapi_extra=_PROPOSAL_BODY,
)
def start_whatif(
    body: Annotated[WhatIfRequest, Depends(proposal_body)],
    request: Request,
    context: Context,
    caller: Caller,
    audit: Audit,
) -> Response:
    if body.org_id is None:
        require(caller.scope is Scope.ADMIN, "a what-if of the whole fleet")
    else:
        require_readable_org(caller, body.org_id)
        admin.get_org(context, body.org_id)
        require(caller.can_write(body.org_id), "a what-if of this org")
    policy = (
        None if body.policy is None else compiled_proposal("policy", compile_policy, body.policy)
    )
    registry = (
        None
        if body.registry is None
        else compiled_proposal("registry", compile_registry, body.registry)
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
    """The wire shape of a job; with ``jobs``, its stored report (with the proposal's
    documents and diffs) once there is one."""
    return {
        **job_summary(job),
        "report": None
        if jobs is None or job.state is not JobState.SUCCEEDED
        else jobs.report_document(job.id),
    }


def job_summary(job: Job) -> dict[str, Any]:
    """A job without its report, as ``GET /v1/whatif`` lists it."""
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
        "requested_by": job.requested_by,
        "attempts": job.attempts,
    }


def _readable(caller: Principal, job: Job) -> bool:
    return caller.scope is Scope.ADMIN if job.org_id is None else caller.can_read(job.org_id)


def compiled_proposal(
    field: str, compile_document: Callable[[Mapping[str, Any], str], Compiled], document: Any
) -> Compiled:
    """A proposed document, compiled; its problems are a 422 naming the field and the path."""
    try:
        return compile_document(document, f"request body: {field}")
    except DocumentError as error:
        where = f"{field}.{error.path}" if error.path else field
        raise ProposalInvalidError(where, error.problem) from None
