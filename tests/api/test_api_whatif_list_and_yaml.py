"""``GET /v1/whatif`` lists the jobs a token may read (admin: all; an org token: its org's;
newest first), and ``POST /v1/whatif`` takes the proposal as YAML (``application/yaml``) as
well as JSON, YAML read within the document bounds. On both engines."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from tests.api.api_fixtures import Api, bearer
from tests.api.test_api_whatif import DROPS_THE_ORG_RUNG, finished, fresh_org

from llmbilling.service.tokens import Scope

YAML = {"Content-Type": "application/yaml"}
DROPS_THE_ORG_RUNG_YAML = (
    "policy:\n  rungs: [workspace_override, derived_provider, deployment_default]\n"
)


def start(api: Api, token: str, org_id: uuid.UUID | None) -> str:
    body: dict[str, Any] = {"policy": DROPS_THE_ORG_RUNG}
    if org_id is not None:
        body["org_id"] = str(org_id)
    response = api.client.post("/v1/whatif", headers=bearer(token), json=body)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def listed(api: Api, token: str) -> list[str]:
    response = api.client.get("/v1/whatif", headers=bearer(token))
    assert response.status_code == 200, response.text
    return [job["id"] for job in response.json()["jobs"]]


def test_the_list_shows_each_token_the_jobs_it_may_read_newest_first(api: Api) -> None:
    org_a, org_b = fresh_org(api, 1), fresh_org(api, 1)
    admin = api.token(Scope.ADMIN)
    fleet_job = start(api, admin, None)
    a_first = start(api, api.token(Scope.ORG_ADMIN, org_a), org_a)
    b_job = start(api, api.token(Scope.ORG_ADMIN, org_b), org_b)
    a_second = start(api, admin, org_a)
    # Jobs are stored: the session's database holds other tests' jobs too.
    ours = {a_second, b_job, a_first, fleet_job}
    assert [job for job in listed(api, admin) if job in ours] == [
        a_second,
        b_job,
        a_first,
        fleet_job,
    ]
    assert listed(api, api.token(Scope.VIEWER, org_a)) == [a_second, a_first]
    assert listed(api, api.token(Scope.ORG_ADMIN, org_b)) == [b_job]


def test_a_listed_job_is_a_summary_without_its_report(api: Api) -> None:
    org_id = fresh_org(api, 1)
    token = api.token(Scope.ORG_ADMIN, org_id)
    job_id = start(api, token, org_id)
    finished(api, f"/v1/whatif/{job_id}", bearer(token))
    (job,) = api.client.get("/v1/whatif", headers=bearer(token)).json()["jobs"]
    assert job["id"] == job_id
    assert job["state"] == "succeeded"
    assert "report" not in job


def test_the_list_needs_a_token(api: Api) -> None:
    assert api.client.get("/v1/whatif").status_code == 401


def test_a_finished_job_carries_the_proposal_and_its_diff(api: Api) -> None:
    org_id = fresh_org(api, 2)
    token = api.token(Scope.ORG_ADMIN, org_id)
    job = finished(api, f"/v1/whatif/{start(api, token, org_id)}", bearer(token))
    proposal = job["report"]["proposal"]
    assert "- org_default" in proposal["policy"]["diff"]
    assert "- org_default\n" not in proposal["policy"]["proposed"]
    assert proposal["registry"]["diff"] == ""
    assert job["report"]["per_org"][0]["workspaces"] == 2


@pytest.mark.parametrize("media_type", ["application/yaml", "application/x-yaml", "text/yaml"])
def test_a_yaml_proposal_is_accepted_like_json(api: Api, media_type: str) -> None:
    org_id = fresh_org(api, 3)
    headers = {**bearer(api.token(Scope.ORG_ADMIN, org_id)), "Content-Type": media_type}
    body = f"org_id: {org_id}\n{DROPS_THE_ORG_RUNG_YAML}"
    started = api.client.post("/v1/whatif", headers=headers, content=body.encode())
    assert started.status_code == 202, started.text
    job = finished(api, started.headers["location"], headers)
    assert job["report"]["dangers"]["to_byok_without_credential"] == 3


def test_a_yaml_proposal_with_an_anchor_is_a_422_naming_the_body(api: Api) -> None:
    body = (
        "policy:\n  rungs: &chain [workspace_override, deployment_default]\n"
        "registry_rungs: *chain\n"
    )
    response = api.client.post(
        "/v1/whatif", headers={**api.admin_headers(), **YAML}, content=body.encode()
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert (problem["code"], problem["field"]) == ("PROPOSAL_INVALID", "body")
    assert "anchors and aliases are not allowed" in problem["message"]
    assert "line 2" in problem["message"]


def test_yaml_that_is_not_a_mapping_is_a_422(api: Api) -> None:
    response = api.client.post(
        "/v1/whatif", headers={**api.admin_headers(), **YAML}, content=b"- policy\n"
    )
    assert response.status_code == 422
    assert response.json()["field"] == "body"


def test_an_invalid_policy_in_yaml_names_the_path_inside_it(api: Api) -> None:
    response = api.client.post(
        "/v1/whatif",
        headers={**api.admin_headers(), **YAML},
        content=b"policy:\n  rungs: [org_default]\n",
    )
    assert response.status_code == 422
    assert response.json()["field"] == "policy"


def test_an_unknown_field_in_yaml_is_a_400_naming_it(api: Api) -> None:
    response = api.client.post(
        "/v1/whatif", headers={**api.admin_headers(), **YAML}, content=b"polcy: {}\n"
    )
    assert response.status_code == 400
    assert response.json()["field"] == "polcy"


@pytest.mark.parametrize("media_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_another_media_type_is_a_400_naming_content_type_and_the_allowed_ones(
    api: Api, media_type: str
) -> None:
    response = api.client.post(
        "/v1/whatif",
        headers={**api.admin_headers(), "Content-Type": media_type},
        content=b"policy: {}",
    )
    assert response.status_code == 400
    problem = response.json()
    assert problem["field"] == "Content-Type"
    assert problem["allowed"] == [
        "application/json",
        "application/yaml",
        "application/x-yaml",
        "text/yaml",
    ]


def test_a_yaml_body_over_64_kib_is_refused_before_it_is_parsed(api: Api) -> None:
    body = b"policy:\n  rungs: [" + b"org_default, " * 6000 + b"]\n"
    response = api.client.post("/v1/whatif", headers={**api.admin_headers(), **YAML}, content=body)
    assert response.status_code == 413


def test_the_openapi_document_describes_both_media_types(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    content = document["paths"]["/v1/whatif"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/yaml"} <= set(content)
    assert content["application/yaml"]["schema"]["properties"].keys() == {
        "policy",
        "registry",
        "org_id",
    }
    assert "get" in document["paths"]["/v1/whatif"]
