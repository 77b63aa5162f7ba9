"""``/v1/whatif``: a what-if as a background job over HTTP, with its report."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from tests.api.api_fixtures import Api, bearer

from llmbilling.service import admin
from llmbilling.service.tokens import Scope
from llmbilling.service.whatif_jobs import WhatIfJobs, WhatIfLimits

DROPS_THE_ORG_RUNG = {"rungs": ["workspace_override", "derived_provider", "deployment_default"]}


def fresh_org(api: Api, size: int) -> uuid.UUID:
    org = admin.create_org(api.context, f"saas-{uuid.uuid4().hex[:6]}")
    admin.set_org_default(api.context, org.id, "platform_managed")
    for _ in range(size):
        admin.create_workspace(api.context, org.id, runtime="claude-code", model="kimi-for-coding")
    return org.id


def finished(api: Api, location: str, headers: dict[str, str]) -> dict[str, Any]:
    """Poll the job until it ends (a generous bound, not a timing assertion)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job: dict[str, Any] = api.client.get(location, headers=headers).json()
        if job["state"] in ("succeeded", "failed"):
            return job
        time.sleep(0.02)
    raise AssertionError(f"{location} did not finish")


def test_an_org_admin_previews_the_2608_change_for_its_org(api: Api) -> None:
    org_id = fresh_org(api, 3)
    headers = bearer(api.token(Scope.ORG_ADMIN, org_id))
    started = api.client.post(
        "/v1/whatif", headers=headers, json={"org_id": str(org_id), "policy": DROPS_THE_ORG_RUNG}
    )
    assert started.status_code == 202, started.text
    location = started.headers["location"]
    assert location == f"/v1/whatif/{started.json()['id']}"
    job = finished(api, location, headers)
    assert (job["state"], job["done"], job["total"]) == ("succeeded", 3, 3)
    report = job["report"]
    assert report["dangers"]["to_byok_without_credential"] == 3
    assert report["dangerous"] is True
    assert report["mode_transitions"][0]["from"] == "platform_managed"


def test_a_fleet_what_if_is_for_admins_only(api: Api) -> None:
    org_id = fresh_org(api, 1)
    org_admin = bearer(api.token(Scope.ORG_ADMIN, org_id))
    refused = api.client.post("/v1/whatif", headers=org_admin, json={})
    assert refused.status_code == 403
    accepted = api.client.post("/v1/whatif", headers=api.admin_headers(), json={})
    assert accepted.status_code == 202


def test_an_invalid_proposal_is_a_422_naming_the_path_inside_it(api: Api) -> None:
    response = api.client.post(
        "/v1/whatif",
        headers=api.admin_headers(),
        json={"policy": {"rungs": ["org_default", "workspace_override"]}},
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "PROPOSAL_INVALID"
    assert problem["field"] == "policy"
    assert "deployment_default" in problem["message"]


def test_an_invalid_registry_names_its_path(api: Api) -> None:
    response = api.client.post(
        "/v1/whatif",
        headers=api.admin_headers(),
        json={
            "registry": {
                "schema_version": 2,
                "providers": [{"id": "p", "name": "P", "platform": True, "auth_env": ["P_KEY"]}],
                "runtimes": [{"id": "x", "api": "grpc"}],
            }
        },
    )
    assert response.status_code == 422
    assert response.json()["field"].startswith("registry.runtimes[0]")


def test_a_proposal_that_is_not_an_object_is_a_400(api: Api) -> None:
    response = api.client.post("/v1/whatif", headers=api.admin_headers(), json={"policy": 5})
    assert response.status_code == 400
    assert response.json()["field"].startswith("policy")


def test_an_unknown_job_is_404(api: Api) -> None:
    response = api.client.get(f"/v1/whatif/{uuid.uuid4()}", headers=api.admin_headers())
    assert response.status_code == 404
    assert response.json()["code"] == "WHATIF_JOB_NOT_FOUND"


def test_starting_a_what_if_is_audited_with_the_request_id(api: Api) -> None:
    org_id = fresh_org(api, 1)
    headers = {**api.admin_headers(), "X-Request-ID": "req-whatif-audit"}
    response = api.client.post(
        "/v1/whatif", headers=headers, json={"org_id": str(org_id), "policy": DROPS_THE_ORG_RUNG}
    )
    assert response.status_code == 202
    (entry,) = api.audit_entries("req-whatif-audit")
    assert entry["action"] == "whatif.started"
    assert entry["after"]["job_id"] == response.json()["id"]


def test_an_org_starting_faster_than_its_rate_gets_a_429_with_retry_after(api: Api) -> None:
    # A stopped clock: the org's one start of the burst never refills during the test.
    limits = WhatIfLimits(active_per_org=10, starts_per_minute=6, start_burst=1)
    stopped = datetime.now(UTC)
    api.app.state.whatif_jobs = WhatIfJobs(api.context, limits, clock=lambda: stopped)
    try:
        org_id = fresh_org(api, 1)
        headers = bearer(api.token(Scope.ORG_ADMIN, org_id))
        body = {"org_id": str(org_id), "policy": DROPS_THE_ORG_RUNG}
        assert api.client.post("/v1/whatif", headers=headers, json=body).status_code == 202
        refused = api.client.post("/v1/whatif", headers=headers, json=body)
    finally:
        api.app.state.whatif_jobs.close()
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"] == "10"
    assert refused.json()["code"] == "WHATIF_RATE_LIMITED"


def test_another_orgs_job_is_404_like_a_missing_one(api: Api) -> None:
    org_a, org_b = fresh_org(api, 1), fresh_org(api, 1)
    started = api.client.post(
        "/v1/whatif",
        headers=bearer(api.token(Scope.ORG_ADMIN, org_a)),
        json={"org_id": str(org_a), "policy": DROPS_THE_ORG_RUNG},
    )
    foreign = api.client.get(
        started.headers["location"], headers=bearer(api.token(Scope.ORG_ADMIN, org_b))
    )
    assert foreign.status_code == 404
    assert foreign.json()["code"] == "WHATIF_JOB_NOT_FOUND"


def test_a_job_names_who_started_it_as_the_audit_log_does(api: Api) -> None:
    org_id = fresh_org(api, 1)
    headers = {**bearer(api.token(Scope.ORG_ADMIN, org_id)), "X-Request-ID": "req-whatif-asker"}
    started = api.client.post(
        "/v1/whatif", headers=headers, json={"org_id": str(org_id), "policy": DROPS_THE_ORG_RUNG}
    )
    (entry,) = api.audit_entries("req-whatif-asker")
    job = finished(api, started.headers["location"], headers)
    assert (job["requested_by"], job["attempts"]) == (entry["actor"], 1)
