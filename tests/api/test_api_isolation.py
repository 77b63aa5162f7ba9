"""Tenant isolation, route by route: every ``/v1`` route is walked with no token, a bad one,
a revoked one, every scope of a foreign org, and every weaker scope of the caller's own org.

Foreign objects answer 404 exactly as missing ones do (ids are never confirmed); a weaker scope
on the caller's own org answers 403; nothing is written by a refused request.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

import pytest
from tests.api.api_fixtures import Answer, Api, bearer

from llmbilling.service import admin, plans
from llmbilling.service.tokens import Scope, create_token, revoke_token
from llmbilling.service.whatif import current_configuration

DECISION = "/v1/workspaces/{workspace_id}/llm-billing-mode"
PROVISION = "/v1/workspaces/{workspace_id}/provision-env"
ORG_DEFAULT = "/v1/orgs/{org_id}/llm-billing-mode-default"
ORG_WORKSPACES = "/v1/orgs/{org_id}/workspaces"
AUDIT = "/v1/audit"
WHATIF = "/v1/whatif"
WHATIF_JOB = "/v1/whatif/{job_id}"
PLANS = "/v1/plans"
PLAN = "/v1/plans/{plan_id}"
PROBLEM_MEMBERS = {"type", "title", "status", "code", "message"}

Need = Literal["read", "write", "provision"]
ORG_ID = "{org_id}"  # in a body: replaced by the org the call is about


@dataclass(frozen=True)
class Call:
    method: str
    template: str
    needs: Need
    body: dict[str, Any] | None = None
    granted_status: int = 200

    def url(self, org_id: UUID, workspace_id: UUID, job_id: UUID, plan_id: UUID) -> str:
        if self.template == AUDIT:
            return f"{AUDIT}?org_id={org_id}"
        return self.template.format(
            org_id=org_id, workspace_id=workspace_id, job_id=job_id, plan_id=plan_id
        )

    def send(
        self,
        api: Api,
        headers: dict[str, str],
        org_id: UUID,
        workspace_id: UUID,
        job_id: UUID | None = None,
        plan_id: UUID | None = None,
    ) -> Answer:
        body = self.body
        if body is not None:
            # Wherever the body names the org (a plan's change nests it).
            body = json.loads(json.dumps(body).replace(ORG_ID, str(org_id)))
        url = self.url(org_id, workspace_id, job_id or uuid.uuid4(), plan_id or uuid.uuid4())
        return api.client.request(self.method, url, headers=headers, json=body)

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


PLANNED_CHANGE = {"change": {"kind": "org_default", "org_id": ORG_ID, "mode": "byok"}}
CALLS = (
    Call("GET", DECISION, "read"),
    Call("PUT", DECISION, "write", {"mode": "byok"}),
    Call("DELETE", DECISION, "write"),
    Call("POST", PROVISION, "provision", {"model": "platform/claude-opus-4-7"}),
    Call("GET", ORG_DEFAULT, "read"),
    Call("PUT", ORG_DEFAULT, "write", {"mode": "byok"}),
    Call("GET", ORG_WORKSPACES, "read"),
    Call("GET", AUDIT, "read"),
    Call("POST", WHATIF, "write", {"org_id": "{org_id}"}, granted_status=202),
    Call("GET", WHATIF_JOB, "read"),
    Call("POST", f"{PLANS}/preview", "write", PLANNED_CHANGE),
    Call("POST", PLANS, "write", PLANNED_CHANGE, granted_status=201),
    Call("GET", PLAN, "read"),
    Call("POST", f"{PLAN}/approve", "write"),
    Call("POST", f"{PLAN}/apply", "write"),
)
# Lists that name no org: a foreign token gets 200 and none of another org's items (each
# list's own tests show it: GET /v1/whatif in test_api_whatif_list_and_yaml.py, GET /v1/orgs in
# test_api_org_listing.py, GET /v1/plans in test_api_plans.py).
# GET /v1/deployment names no tenant at all (tests/api/test_ofrep.py).
TOKEN_SCOPED_LISTS = {
    ("GET", WHATIF),
    ("GET", "/v1/orgs"),
    ("GET", PLANS),
    ("GET", "/v1/deployment"),
}
ORG_SCOPES = (Scope.ORG_ADMIN, Scope.PROVISIONER, Scope.VIEWER)
GRANTS: dict[Need, set[Scope]] = {
    "read": {Scope.ADMIN, Scope.ORG_ADMIN, Scope.PROVISIONER, Scope.VIEWER},
    "write": {Scope.ADMIN, Scope.ORG_ADMIN},
    "provision": {Scope.ADMIN, Scope.PROVISIONER},
}


@dataclass(frozen=True)
class Tenants:
    own_org: UUID
    own_workspace: UUID
    own_job: UUID
    own_plan: UUID
    foreign_org: UUID
    foreign_workspace: UUID


@pytest.fixture
def tenants(api: Api) -> Tenants:
    own_org, own_workspace = api.org_with_workspace()
    foreign_org, foreign_workspace = api.org_with_workspace()
    jobs = api.app.state.whatif_jobs
    own_job = jobs.start(current_configuration(api.context), org_id=own_org).id
    own_plan = plans.propose_plan(api.context, plans.org_default_change(own_org, "byok")).id
    return Tenants(own_org, own_workspace, own_job, own_plan, foreign_org, foreign_workspace)


def _token(api: Api, scope: Scope, org_id: UUID) -> dict[str, str]:
    return bearer(api.token(scope, None if scope is Scope.ADMIN else org_id))


def _with_request_id(headers: dict[str, str]) -> tuple[dict[str, str], str]:
    request_id = f"req-{uuid.uuid4()}"
    return {**headers, "X-Request-ID": request_id}, request_id


def _refused(response: Answer, status: int, code: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert set(response.json()) == PROBLEM_MEMBERS
    assert response.json()["code"] == code


def test_the_walk_covers_every_api_route(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    served = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        if path.startswith("/v1/")
        for method in operations
    }
    assert served == {(call.method, call.template) for call in CALLS} | TOKEN_SCOPED_LISTS


@pytest.mark.parametrize("call", CALLS, ids=str)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer llmb_not-a-token", "Bearer ", "Basic YWRtaW46YWRtaW4=", "REVOKED"],
)
def test_every_route_refuses_a_missing_bad_or_revoked_token_with_401(
    api: Api, tenants: Tenants, call: Call, authorization: str | None
) -> None:
    headers: dict[str, str] = {}
    if authorization == "REVOKED":
        issued = create_token(api.context, scope=Scope.ADMIN)
        revoke_token(api.context, issued.info.id)
        headers = bearer(issued.token)
    elif authorization is not None:
        headers = {"Authorization": authorization}
    headers, request_id = _with_request_id(headers)

    response = call.send(
        api, headers, tenants.own_org, tenants.own_workspace, tenants.own_job, tenants.own_plan
    )

    _refused(response, 401, "UNAUTHENTICATED")
    assert response.headers["www-authenticate"] == "Bearer"
    assert api.audit_entries(request_id) == []


def _normalized(response: Answer, *ids: UUID) -> dict[str, Any]:
    text = response.text
    for found in ids:
        text = text.replace(str(found), "<id>")
    return {"status": response.status_code, "body": text}


@pytest.mark.parametrize("call", CALLS, ids=str)
@pytest.mark.parametrize("scope", ORG_SCOPES, ids=str)
def test_a_foreign_orgs_token_gets_the_same_404_as_for_an_id_that_does_not_exist(
    api: Api, tenants: Tenants, call: Call, scope: Scope
) -> None:
    foreign_token = _token(api, scope, tenants.foreign_org)
    headers, request_id = _with_request_id(foreign_token)

    foreign = call.send(
        api, headers, tenants.own_org, tenants.own_workspace, tenants.own_job, tenants.own_plan
    )
    missing_org, missing_workspace, missing_job = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    missing_plan = uuid.uuid4()
    missing = call.send(
        api, foreign_token, missing_org, missing_workspace, missing_job, missing_plan
    )

    by_workspace = "{workspace_id}" in call.template
    by_job = "{job_id}" in call.template
    by_plan = "{plan_id}" in call.template
    _refused(
        foreign,
        404,
        "WORKSPACE_NOT_FOUND"
        if by_workspace
        else "WHATIF_JOB_NOT_FOUND"
        if by_job
        else "PLAN_NOT_FOUND"
        if by_plan
        else "ORG_NOT_FOUND",
    )
    assert _normalized(
        foreign, tenants.own_org, tenants.own_workspace, tenants.own_job, tenants.own_plan
    ) == _normalized(missing, missing_org, missing_workspace, missing_job, missing_plan)
    if by_workspace:
        assert str(tenants.own_org) not in foreign.text
    assert api.audit_entries(request_id) == []


WEAKER = [
    (call, scope) for call in CALLS for scope in ORG_SCOPES if scope not in GRANTS[call.needs]
]


@pytest.mark.parametrize(("call", "scope"), WEAKER, ids=[f"{c}-{s}" for c, s in WEAKER])
def test_a_weaker_scope_on_its_own_org_gets_403_and_changes_nothing(
    api: Api, tenants: Tenants, call: Call, scope: Scope
) -> None:
    headers, request_id = _with_request_id(_token(api, scope, tenants.own_org))

    response = call.send(
        api, headers, tenants.own_org, tenants.own_workspace, tenants.own_job, tenants.own_plan
    )

    _refused(response, 403, "FORBIDDEN")
    assert str(tenants.own_org) not in response.text
    assert api.audit_entries(request_id) == []


GRANTED = [
    (call, scope)
    for call in CALLS
    for scope in (Scope.ADMIN, *ORG_SCOPES)
    if scope in GRANTS[call.needs]
]


@pytest.mark.parametrize(("call", "scope"), GRANTED, ids=[f"{c}-{s}" for c, s in GRANTED])
def test_each_scope_may_do_what_it_is_granted_on_its_own_org(
    api: Api, tenants: Tenants, call: Call, scope: Scope
) -> None:
    response = call.send(
        api,
        _token(api, scope, tenants.own_org),
        tenants.own_org,
        tenants.own_workspace,
        tenants.own_job,
        tenants.own_plan,
    )

    assert response.status_code == call.granted_status, response.text


@pytest.mark.parametrize("scope", ORG_SCOPES, ids=str)
def test_an_org_token_sees_only_its_own_orgs_audit_entries(
    api: Api, tenants: Tenants, scope: Scope
) -> None:
    admin.set_override(api.context, tenants.foreign_workspace, "byok")
    headers = _token(api, scope, tenants.own_org)

    everything = api.client.get(AUDIT, headers=headers, params={"limit": "500"}).json()
    foreign = api.client.get(
        AUDIT, headers=headers, params={"workspace_id": str(tenants.foreign_workspace)}
    ).json()

    assert {entry["org_id"] for entry in everything["items"]} == {str(tenants.own_org)}
    assert foreign["items"] == []
