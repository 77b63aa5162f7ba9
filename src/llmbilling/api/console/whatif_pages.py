"""The console's what-if pages: propose a policy or registry, watch the job, read the report.

Starting a what-if needs write access to its org (the whole fleet: an admin token), like the
JSON API; reading a job needs read access to its org. A running job's page refreshes itself
with a ``<meta http-equiv="refresh">``: the console has no scripts.

A report's sample links open one workspace decided now under the job's current and proposed
configuration, both traces side by side; they need read access to that workspace too.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Form, Request
from markupsafe import Markup
from starlette.responses import RedirectResponse, Response

from llmbilling.api.auth import Principal, Scope
from llmbilling.api.console import views
from llmbilling.api.console.guard import (
    ConsoleRoute,
    Context,
    PageNotFoundError,
    SameOrigin,
    SignedIn,
    WriteForbiddenError,
)
from llmbilling.api.console.rendering import render
from llmbilling.api.routes.whatif import jobs_of, readable_jobs
from llmbilling.config.yaml_documents import parse_yaml_mapping
from llmbilling.core.policy import compile_policy
from llmbilling.core.registry import compile_registry
from llmbilling.core.whatif import DangerClass
from llmbilling.errors import (
    DocumentError,
    InvalidInputError,
    PolicyError,
    RegistryError,
    WorkspaceNotFoundError,
)
from llmbilling.service import admin
from llmbilling.service.audit import AuditContext
from llmbilling.service.whatif import proposed_configuration
from llmbilling.service.whatif_jobs import JobState, WhatIfJob
from llmbilling.service.whatif_report import (
    ORGS_SHOWN,
    DocumentDiff,
    diff_line_class,
    render_html,
    transition_chart,
    worst_orgs,
)

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

EXAMPLE_POLICY = (
    "rungs: [workspace_override, org_default, derived_provider, deployment_default]\n"
    "options:\n  own_key_wins_over_org_default: false\n"
)
# The standalone report page styles itself inline and runs no script.
REPORT_PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


def _readable_job(request: Request, principal: Principal, job_id: str) -> WhatIfJob:
    try:
        parsed = UUID(job_id)
    except ValueError:
        raise PageNotFoundError from None
    job = jobs_of(request).get(parsed)
    if job is None:
        raise PageNotFoundError
    allowed = (
        principal.scope is Scope.ADMIN if job.org_id is None else principal.can_read(job.org_id)
    )
    if not allowed:
        raise PageNotFoundError
    return job


def _can_start(principal: Principal) -> bool:
    return principal.scope in (Scope.ADMIN, Scope.ORG_ADMIN)


@router.get("/whatif")
def whatif_form(request: Request, principal: SignedIn) -> Response:
    return _form(request, principal, policy_text=EXAMPLE_POLICY, registry_text="", org="")


def _form(
    request: Request,
    principal: Principal,
    *,
    policy_text: str,
    registry_text: str,
    org: str,
    problem: str | None = None,
    status_code: int = 200,
) -> Response:
    jobs = readable_jobs(jobs_of(request), principal)
    return render(
        "console_whatif.html",
        status_code=status_code,
        principal=principal,
        can_start=_can_start(principal),
        policy_text=policy_text,
        registry_text=registry_text,
        org=org or ("" if principal.org_id is None else str(principal.org_id)),
        problem=problem,
        jobs=jobs,
    )


@router.post("/whatif", dependencies=[SameOrigin])
def start_whatif(
    request: Request,
    context: Context,
    principal: SignedIn,
    policy: Annotated[str, Form()] = "",
    registry: Annotated[str, Form()] = "",
    org: Annotated[str, Form()] = "",
) -> Response:
    if not _can_start(principal):
        raise WriteForbiddenError
    org_id = _org_for(context, principal, org.strip())
    try:
        policy_document = _pasted(policy, "pasted policy", PolicyError)
        registry_document = _pasted(registry, "pasted registry", RegistryError)
        proposed_policy = (
            None if policy_document is None else compile_policy(policy_document, "pasted policy")
        )
        proposed_registry = (
            None
            if registry_document is None
            else compile_registry(registry_document, "pasted registry")
        )
    except DocumentError as error:
        return _form(
            request,
            principal,
            policy_text=policy,
            registry_text=registry,
            org=org,
            problem=error.message,
            status_code=422,
        )
    request_id = getattr(request.state, "request_id", None) or str(uuid.uuid4())
    job = jobs_of(request).start(
        proposed_configuration(context, proposed_policy, proposed_registry),
        org_id=org_id,
        audit_context=AuditContext(actor=principal.actor, request_id=str(request_id)),
    )
    return RedirectResponse(f"/console/whatif/{job.id}", status_code=303)


def _org_for(context: Context, principal: Principal, org: str) -> UUID | None:
    """The org a what-if covers: blank is the whole fleet (admins only)."""
    if not org:
        if principal.scope is not Scope.ADMIN:
            raise WriteForbiddenError
        return None
    try:
        org_id = UUID(org)
    except ValueError:
        raise PageNotFoundError from None
    if not principal.can_read(org_id):
        raise PageNotFoundError
    admin.get_org(context, org_id)
    if not principal.can_write(org_id):
        raise WriteForbiddenError
    return org_id


def _pasted(text: str, source: str, error_type: type[DocumentError]) -> dict[str, Any] | None:
    """A pasted YAML document; blank means "keep today's"."""
    if not text.strip():
        return None
    return parse_yaml_mapping(text, source, error_type)


def _report_document(request: Request, job: WhatIfJob) -> dict[str, Any] | None:
    return jobs_of(request).report_document(job.id)


def _diff_lines(diff: DocumentDiff) -> list[tuple[str, str]]:
    """A diff's lines, each with its CSS class (see :func:`diff_line_class`)."""
    return [(diff_line_class(line), line) for line in diff.diff.splitlines()]


@router.get("/whatif/{job_id}")
def whatif_job(request: Request, principal: SignedIn, job_id: str) -> Response:
    job = _readable_job(request, principal, job_id)
    document = _report_document(request, job)
    proposal = jobs_of(request).proposal(job.id)
    orgs, more_orgs = ([], 0) if document is None else worst_orgs(document, ORGS_SHOWN)
    return render(
        "console_whatif_job.html",
        principal=principal,
        job=job,
        running=job.state in (JobState.QUEUED, JobState.RUNNING),
        document=document,
        chart=None if document is None else Markup(transition_chart(document["mode_transitions"])),
        diffs=[]
        if proposal is None
        else [(diff, _diff_lines(diff)) for diff in proposal.documents],
        danger_names=[danger.value for danger in DangerClass],
        orgs=orgs,
        more_orgs=more_orgs,
    )


@router.get("/whatif/{job_id}/samples/{workspace_id}")
def whatif_sample(
    request: Request, principal: SignedIn, job_id: str, workspace_id: str
) -> Response:
    """One workspace decided now under the job's current and proposed configuration."""
    job = _readable_job(request, principal, job_id)
    try:
        sample = jobs_of(request).sample(job.id, workspace_id)
    except (InvalidInputError, WorkspaceNotFoundError):
        raise PageNotFoundError from None
    if sample is None or not principal.can_read(sample.org_id):
        raise PageNotFoundError
    sides = [
        (label, decision, views.ladder(decision))
        for label, decision in (("Current", sample.current), ("Proposed", sample.proposed))
    ]
    return render(
        "console_whatif_sample.html",
        principal=principal,
        job=job,
        sample=sample,
        sides=sides,
        source_labels=views.SOURCE_LABELS,
        changed=(sample.current.mode, sample.current.source)
        != (sample.proposed.mode, sample.proposed.source),
    )


@router.get("/whatif/{job_id}/report.html")
def whatif_report_page(request: Request, principal: SignedIn, job_id: str) -> Response:
    """The self-contained report page, as ``llmbilling whatif --out`` writes it."""
    job = _readable_job(request, principal, job_id)
    document = _report_document(request, job)
    if document is None:
        raise PageNotFoundError
    response = Response(render_html(document), media_type="text/html")
    response.headers["Content-Security-Policy"] = REPORT_PAGE_POLICY
    response.headers["Cache-Control"] = "no-store"
    return response
