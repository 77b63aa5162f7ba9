"""OpenAPI links: which value of one answer feeds which parameter of the next call.

Each constant is the ``links`` map of one response (OpenAPI 3.1 Link objects), declared in
that route's decorator beside the response it belongs to. They document how to walk the API
(org listing → an org's default and workspaces → a workspace's decision, provision and audit
entries → a conditional override write; a what-if → its job) and they are what schemathesis'
stateful mode follows to chain calls (``tests/reliability/test_stateful_fuzz.py``,
``tests/reliability/test_schemathesis_contract.py``). A link names its target by ``operationRef``
(path and method), so renaming a route function does not break it.

A link only ever hands on a value that is a real id whenever it resolves: a path parameter of
the call made, a non-null field of an answer, a listing's first item (absent, so not followed,
when the page is empty). Nullable fields (an audit entry's ``org_id``, a job's ``org_id``) are
never link sources. The decision record (spec §2) carries no ``org_id``, so the org routes are
reached from the org listing or a workspace listing, never from a decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DECISION_PATH = "/v1/workspaces/{workspace_id}/llm-billing-mode"
PROVISION_ENV_PATH = "/v1/workspaces/{workspace_id}/provision-env"
ORG_DEFAULT_PATH = "/v1/orgs/{org_id}/llm-billing-mode-default"
ORG_WORKSPACES_PATH = "/v1/orgs/{org_id}/workspaces"
ORGS_PATH = "/v1/orgs"
AUDIT_PATH = "/v1/audit"
WHATIF_JOB_PATH = "/v1/whatif/{job_id}"
PLAN_PATH = "/v1/plans/{plan_id}"
PLAN_APPROVE_PATH = "/v1/plans/{plan_id}/approve"
PLAN_APPLY_PATH = "/v1/plans/{plan_id}/apply"

Links = dict[str, dict[str, Any]]


def operation_ref(method: str, path: str) -> str:
    """The JSON pointer of an operation in this document (RFC 6901 escaping)."""
    return f"#/paths/{path.replace('~', '~0').replace('/', '~1')}/{method.lower()}"


def link(method: str, path: str, description: str, parameters: Mapping[str, str]) -> dict[str, Any]:
    """A Link object to ``method path``; ``parameters`` maps a target parameter (``name``,
    or ``query.name`` / ``header.Name`` where the location must be said) to a runtime
    expression of the response or request at hand."""
    return {
        "operationRef": operation_ref(method, path),
        "description": description,
        "parameters": dict(parameters),
    }


_ETAG = "$response.header.ETag"


def _decision_links(workspace_id: str, *, read_again: bool) -> Links:
    """From an answer that names a workspace and carries its decision's ``ETag``."""
    links: Links = {
        "SetOverride": link(
            "PUT",
            DECISION_PATH,
            "Set this workspace's override, conditional on the decision just read.",
            {"workspace_id": workspace_id, "header.If-Match": _ETAG},
        ),
        "ClearOverride": link(
            "DELETE",
            DECISION_PATH,
            "Clear this workspace's override, conditional on the decision just read.",
            {"workspace_id": workspace_id, "header.If-Match": _ETAG},
        ),
        "ProvisionEnv": link(
            "POST",
            PROVISION_ENV_PATH,
            "Provision this workspace's container env.",
            {"workspace_id": workspace_id},
        ),
    }
    if read_again:
        links["ReadDecision"] = link(
            "GET", DECISION_PATH, "Read the decision again.", {"workspace_id": workspace_id}
        )
    return links


# The workspace a call was about is its path's: the record's `workspace_id` is nullable in the
# schema (a decision without a workspace), so a link from it could hand on a null.
_REQUESTED_WORKSPACE = "$request.path.workspace_id"
# GET /v1/workspaces/{workspace_id}/llm-billing-mode → 200
DECISION_READ_LINKS = _decision_links(_REQUESTED_WORKSPACE, read_again=False)
# PUT and DELETE /v1/workspaces/{workspace_id}/llm-billing-mode → 200 (the new decision)
DECISION_WRITE_LINKS = _decision_links(_REQUESTED_WORKSPACE, read_again=True)

# POST /v1/workspaces/{workspace_id}/provision-env → 200
PROVISION_ENV_LINKS: Links = {
    "ReadDecision": link(
        "GET",
        DECISION_PATH,
        "The decision of the workspace just provisioned.",
        {"workspace_id": _REQUESTED_WORKSPACE},
    ),
    "WorkspaceAudit": link(
        "GET",
        AUDIT_PATH,
        "The audit entries of the workspace just provisioned.",
        {"query.workspace_id": _REQUESTED_WORKSPACE},
    ),
}


def _org_default_links(*, read_again: bool) -> Links:
    org_id = "$response.body#/org_id"
    links: Links = {
        "SetOrgDefault": link(
            "PUT",
            ORG_DEFAULT_PATH,
            "Set the org default, conditional on the version just read.",
            {"org_id": org_id, "header.If-Match": _ETAG},
        ),
        "ListOrgWorkspaces": link(
            "GET",
            ORG_WORKSPACES_PATH,
            "The org's workspaces with their decisions.",
            {"org_id": org_id},
        ),
        "OrgAudit": link("GET", AUDIT_PATH, "The org's audit entries.", {"query.org_id": org_id}),
    }
    if read_again:
        links["ReadOrgDefault"] = link(
            "GET", ORG_DEFAULT_PATH, "Read the org default again.", {"org_id": org_id}
        )
    return links


# GET /v1/orgs/{org_id}/llm-billing-mode-default → 200
ORG_DEFAULT_READ_LINKS = _org_default_links(read_again=False)
# PUT /v1/orgs/{org_id}/llm-billing-mode-default → 200
ORG_DEFAULT_WRITE_LINKS = _org_default_links(read_again=True)

_FIRST_WORKSPACE = "$response.body#/items/0/workspace/id"
# GET /v1/orgs/{org_id}/workspaces → 200 (an empty page resolves no item link: none is followed)
ORG_WORKSPACES_LINKS: Links = {
    "ReadFirstDecision": link(
        "GET",
        DECISION_PATH,
        "The decision of the page's first workspace.",
        {"workspace_id": _FIRST_WORKSPACE},
    ),
    "ProvisionFirstWorkspace": link(
        "POST",
        PROVISION_ENV_PATH,
        "Provision the page's first workspace.",
        {"workspace_id": _FIRST_WORKSPACE},
    ),
    "FirstWorkspaceAudit": link(
        "GET",
        AUDIT_PATH,
        "The audit entries of the page's first workspace.",
        {"query.workspace_id": _FIRST_WORKSPACE},
    ),
    "NextPage": link(
        "GET",
        ORG_WORKSPACES_PATH,
        "The next page of the same listing (no next page when `next_cursor` is null).",
        {
            "org_id": "$request.path.org_id",
            "query.cursor": "$response.body#/next_cursor",
            "query.limit": "$request.query.limit",
            "query.mode": "$request.query.mode",
            "query.source": "$request.query.source",
        },
    ),
    "ReadOrgDefault": link(
        "GET", ORG_DEFAULT_PATH, "The org's default.", {"org_id": "$request.path.org_id"}
    ),
}

# GET /v1/orgs → 200
ORGS_LINKS: Links = {
    "ListFirstOrgWorkspaces": link(
        "GET",
        ORG_WORKSPACES_PATH,
        "The workspaces of the page's first org.",
        {"org_id": "$response.body#/items/0/id"},
    ),
    "ReadFirstOrgDefault": link(
        "GET",
        ORG_DEFAULT_PATH,
        "The default of the page's first org.",
        {"org_id": "$response.body#/items/0/id"},
    ),
    "NextPage": link(
        "GET",
        ORGS_PATH,
        "The next page (none when `next_cursor` is null).",
        {"query.after": "$response.body#/next_cursor", "query.limit": "$request.query.limit"},
    ),
}

# GET /v1/audit → 200. No link from an entry's `org_id` or `workspace_id`: either may be null
# (an entry about the deployment, or about an org only), and a link would hand the null on.
AUDIT_LINKS: Links = {
    "NextPage": link(
        "GET",
        AUDIT_PATH,
        "The next (older) page with the same filters (none when `next_cursor` is null).",
        {
            "query.cursor": "$response.body#/next_cursor",
            "query.limit": "$request.query.limit",
            "query.org_id": "$request.query.org_id",
            "query.workspace_id": "$request.query.workspace_id",
            "query.since": "$request.query.since",
            "query.until": "$request.query.until",
        },
    ),
}

# POST /v1/whatif → 202
WHATIF_STARTED_LINKS: Links = {
    "ReadJob": link(
        "GET", WHATIF_JOB_PATH, "The job just started.", {"job_id": "$response.body#/id"}
    ),
}

# GET /v1/whatif/{job_id} → 200
WHATIF_JOB_LINKS: Links = {
    "PollJob": link(
        "GET",
        WHATIF_JOB_PATH,
        "Read the job again (until it is done).",
        {"job_id": "$response.body#/id"},
    ),
}


def _plan_links(plan_id: str, *, read_again: bool) -> Links:
    """From an answer that names a plan: approve it, apply it (and read it again)."""
    links: Links = {
        "ApprovePlan": link("POST", PLAN_APPROVE_PATH, "Approve this plan.", {"plan_id": plan_id}),
        "ApplyPlan": link("POST", PLAN_APPLY_PATH, "Apply this plan.", {"plan_id": plan_id}),
    }
    if read_again:
        links["ReadPlan"] = link("GET", PLAN_PATH, "Read this plan.", {"plan_id": plan_id})
    return links


# POST /v1/plans → 201
PLAN_PROPOSED_LINKS = _plan_links("$response.body#/id", read_again=True)
# GET /v1/plans/{plan_id}, POST …/approve, POST …/apply → 200
PLAN_LINKS = _plan_links("$request.path.plan_id", read_again=False)
# GET /v1/plans → 200 (the newest plan: the first item)
PLAN_LIST_LINKS = _plan_links("$response.body#/plans/0/id", read_again=True)
