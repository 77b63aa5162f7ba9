"""Metrics, request ids and logs. The log test walks every route (provision-env included)
with sentinel secrets in both scopes and in the deployment's proxy token, then greps the
captured JSON logs for them."""

from __future__ import annotations

import io
import json
from pathlib import Path
from uuid import UUID

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from tests.api.api_fixtures import Api, bearer

from llmbilling.api.app import create_app
from llmbilling.config.settings import Settings
from llmbilling.service import admin, secrets
from llmbilling.service.context import ServiceContext
from llmbilling.service.tokens import Scope, create_token
from llmbilling.store.crypto import KeyRing

ORG_SECRET = "sk-ant-SENTINEL-org-scope"
WORKSPACE_SECRET = "sk-SENTINEL-workspace-scope"
USAGE_TOKEN = "usage-SENTINEL-proxy-token"


def _samples(api: Api) -> list[tuple[str, dict[str, str], float]]:
    text = api.client.get("/metrics").text
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def test_decisions_are_counted_by_mode_and_source(api: Api) -> None:
    _, workspace_id = api.org_with_workspace(model="gpt-5.5", runtime="codex")
    api.client.get(f"/v1/workspaces/{workspace_id}/llm-billing-mode", headers=api.admin_headers())

    counted = {
        (labels["mode"], labels["source"]): value
        for name, labels, value in _samples(api)
        if name == "llmbilling_decisions_total"
    }
    assert counted == {("byok", "derived_provider"): 1.0}


def test_errors_are_counted_by_code(api: Api) -> None:
    headers = api.admin_headers()
    for _ in range(2):
        api.client.get(
            "/v1/workspaces/00000000-0000-0000-0000-000000000000/llm-billing-mode", headers=headers
        )
    api.client.get("/v1/audit")

    counted = {
        labels["code"]: value
        for name, labels, value in _samples(api)
        if name == "llmbilling_errors_total"
    }
    assert counted == {"WORKSPACE_NOT_FOUND": 2.0, "UNAUTHENTICATED": 1.0}


def test_latency_is_observed_by_route_template_and_method_never_by_raw_path(api: Api) -> None:
    _, workspace_id = api.org_with_workspace()
    headers = api.admin_headers()
    api.client.get(f"/v1/workspaces/{workspace_id}/llm-billing-mode", headers=headers)
    api.client.get("/no/such/route")

    routes = {
        (labels["route"], labels["method"])
        for name, labels, _ in _samples(api)
        if name == "llmbilling_http_request_duration_seconds_count"
    }
    assert ("/v1/workspaces/{workspace_id}/llm-billing-mode", "GET") in routes
    assert ("<unmatched>", "GET") in routes
    assert not any(str(workspace_id) in route for route, _ in routes)


DROPS_ORG_RUNG = {"rungs": ["workspace_override", "derived_provider", "deployment_default"]}


def _walk_every_route(
    client: TestClient,
    context: ServiceContext,
    token: str,
    ids: tuple[UUID, UUID, UUID],
) -> set[tuple[str, str]]:
    org_id, byok_workspace, platform_workspace = ids
    headers = {**bearer(token), "X-Request-ID": "walk"}
    calls = [
        ("GET", "/v1/workspaces/{workspace_id}/llm-billing-mode", byok_workspace, None),
        ("PUT", "/v1/workspaces/{workspace_id}/llm-billing-mode", byok_workspace, {"mode": "byok"}),
        ("DELETE", "/v1/workspaces/{workspace_id}/llm-billing-mode", byok_workspace, None),
        ("POST", "/v1/workspaces/{workspace_id}/provision-env", byok_workspace, None),
        ("POST", "/v1/workspaces/{workspace_id}/provision-env", platform_workspace, None),
        ("GET", "/v1/orgs/{org_id}/llm-billing-mode-default", org_id, None),
        ("PUT", "/v1/orgs/{org_id}/llm-billing-mode-default", org_id, {"mode": "BYOK"}),
        ("GET", "/v1/orgs/{org_id}/workspaces", org_id, None),
        ("GET", "/v1/audit", None, None),
        ("GET", "/healthz", None, None),
        ("GET", "/readyz", None, None),
        ("GET", "/metrics", None, None),
        ("GET", "/v1/deployment", None, None),
    ]
    walked = set()
    for method, template, object_id, body in calls:
        url = template.replace("{workspace_id}", str(object_id)).replace("{org_id}", str(object_id))
        response = client.request(method, url, headers=headers, json=body)
        assert response.status_code == 200, (url, response.text)
        walked.add((method, template))
    started = client.post(
        "/v1/whatif", headers=headers, json={"org_id": str(org_id), "policy": DROPS_ORG_RUNG}
    )
    assert started.status_code == 202, started.text
    walked.add(("POST", "/v1/whatif"))
    job = client.get(started.headers["location"], headers=headers)
    assert job.status_code == 200, job.text
    walked.add(("GET", "/v1/whatif/{job_id}"))
    listed = client.get("/v1/whatif", headers=headers)
    assert listed.status_code == 200, listed.text
    walked.add(("GET", "/v1/whatif"))
    orgs = client.get("/v1/orgs", headers=headers)
    assert orgs.status_code == 200, orgs.text
    walked.add(("GET", "/v1/orgs"))
    walked |= _walk_plans(client, context, headers, org_id)
    # Failing paths log too: a refused token, a failed provision naming env vars.
    client.get("/v1/audit", headers=bearer(token + "x"))
    admin.set_override(context, platform_workspace, "byok")
    client.post(f"/v1/workspaces/{platform_workspace}/provision-env", headers=headers)
    return walked


def _walk_plans(
    client: TestClient, context: ServiceContext, headers: dict[str, str], org_id: UUID
) -> set[tuple[str, str]]:
    """Preview, plan, read, list, approve (a second token) and apply one org default change."""
    change = {"change": {"kind": "org_default", "org_id": str(org_id), "mode": "byok"}}
    second = {**bearer(create_token(context, scope=Scope.ADMIN).token), "X-Request-ID": "walk"}
    created = client.post("/v1/plans", headers=headers, json=change)
    assert created.status_code == 201, created.text
    plan = created.headers["location"]
    calls = [
        ("POST", "/v1/plans/preview", "/v1/plans/preview", headers, change),
        ("GET", "/v1/plans", "/v1/plans", headers, None),
        ("GET", "/v1/plans/{plan_id}", plan, headers, None),
        ("POST", "/v1/plans/{plan_id}/approve", f"{plan}/approve", second, None),
        ("POST", "/v1/plans/{plan_id}/apply", f"{plan}/apply", headers, None),
    ]
    for method, _template, url, caller, body in calls:
        response = client.request(method, url, headers=caller, json=body)
        assert response.status_code == 200, (url, response.text)
    # A plan that sets a secret takes the value in the apply's body: it is never logged.
    secret = {
        "change": {
            "kind": "secret",
            "scope": "org",
            "owner_id": str(org_id),
            "name": "EXTRA_TOKEN",
            "present": True,
        }
    }
    secret_plan = client.post("/v1/plans", headers=headers, json=secret).headers["location"]
    applied = client.post(f"{secret_plan}/apply", headers=headers, json={"value": ORG_SECRET})
    assert applied.status_code == 200, applied.text
    return {("POST", "/v1/plans")} | {(method, template) for method, template, *_ in calls}


def test_no_route_ever_logs_a_secret_value_or_a_token(
    tmp_path: Path, captured_logs: io.StringIO
) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'store.sqlite3'}",
        secret_keys=KeyRing.new_key_text(1),
        MOLECULE_LLM_BASE_URL="https://proxy.example/v1",
        MOLECULE_LLM_USAGE_TOKEN=USAGE_TOKEN,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        context = app.state.context
        org = admin.create_org(context, "sentinels")
        byok = admin.create_workspace(context, org.id, model="claude-opus-4-7")
        platform = admin.create_workspace(context, org.id, model="platform/claude-opus-4-7")
        secrets.set_secret(context, "org", org.id, "ANTHROPIC_API_KEY", ORG_SECRET)
        secrets.set_secret(context, "workspace", byok.id, "OPENAI_API_KEY", WORKSPACE_SECRET)
        token = create_token(context, scope=Scope.ADMIN).token

        walked = _walk_every_route(client, context, token, (org.id, byok.id, platform.id))
        served = {
            (method.upper(), path)
            for path, operations in client.get("/openapi.json").json()["paths"].items()
            for method in operations
        }

    assert walked == served
    logged = captured_logs.getvalue()
    lines = [json.loads(line) for line in logged.splitlines()]
    assert sum(line.get("event") == "request" for line in lines) >= len(walked)
    assert {line["request_id"] for line in lines if line.get("event") == "request"} >= {"walk"}
    for sentinel in (ORG_SECRET, WORKSPACE_SECRET, USAGE_TOKEN, token):
        assert sentinel not in logged
