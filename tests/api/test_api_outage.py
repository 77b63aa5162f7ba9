"""A store outage: the decision GET still answers (``constant_fallback`` with its error, never a
5xx); writes and store-backed reads answer 503 problems; readiness fails, liveness does not.

The outage is real: the PostgreSQL database is dropped under the app, the SQLite file is
replaced by a directory (neither engine can open it any more).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from tests.api.api_fixtures import bearer
from tests.api.outages import saas_context_on, take_down
from tests.store.db_fixtures import DatabaseFactory

from llmbilling.api.app import create_app
from llmbilling.service import admin
from llmbilling.service.tokens import Scope, create_token


@dataclass(frozen=True)
class Outage:
    client: TestClient
    headers: dict[str, str]
    org_id: UUID
    workspace_id: UUID


@pytest.fixture
def outage(new_database: DatabaseFactory) -> Iterator[Outage]:
    url = new_database()
    context = saas_context_on(url)
    org = admin.create_org(context, "before-the-outage")
    workspace = admin.create_workspace(context, org.id, model="gpt-5.5", runtime="codex")
    headers = bearer(create_token(context, scope=Scope.ADMIN).token)
    with TestClient(create_app(context=context)) as client:
        decision = f"/v1/workspaces/{workspace.id}/llm-billing-mode"
        assert client.get(decision, headers=headers).json()["source"] == "derived_provider"
        take_down(context, url)
        yield Outage(client, headers, org.id, workspace.id)
    context.close()


def test_the_decision_get_answers_constant_fallback_with_the_error(outage: Outage) -> None:
    response = outage.client.get(
        f"/v1/workspaces/{outage.workspace_id}/llm-billing-mode", headers=outage.headers
    )

    assert response.status_code == 200
    record = response.json()
    assert (record["mode"], record["source"]) == ("platform_managed", "constant_fallback")
    assert record["error"]["code"] == "OVERRIDE_READ_FAILED"
    assert "etag" not in response.headers


def test_an_unknown_workspace_id_gets_the_same_fallback_so_nothing_is_confirmed(
    outage: Outage,
) -> None:
    response = outage.client.get(
        f"/v1/workspaces/{uuid.uuid4()}/llm-billing-mode", headers=outage.headers
    )

    assert response.status_code == 200
    assert response.json()["source"] == "constant_fallback"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/v1/workspaces/{workspace}/llm-billing-mode", {"mode": "byok"}),
        ("DELETE", "/v1/workspaces/{workspace}/llm-billing-mode", None),
        ("POST", "/v1/workspaces/{workspace}/provision-env", None),
        ("PUT", "/v1/orgs/{org}/llm-billing-mode-default", {"mode": "byok"}),
        ("GET", "/v1/orgs/{org}/llm-billing-mode-default", None),
        ("GET", "/v1/orgs/{org}/workspaces", None),
        ("GET", "/v1/audit", None),
    ],
)
def test_writes_and_store_backed_reads_answer_503_problems(
    outage: Outage, method: str, path: str, body: dict[str, str] | None
) -> None:
    url = path.format(workspace=outage.workspace_id, org=outage.org_id)

    response = outage.client.request(method, url, headers=outage.headers, json=body)

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "STORE_UNAVAILABLE"


def test_readiness_fails_and_liveness_holds(outage: Outage) -> None:
    assert outage.client.get("/readyz").status_code == 503
    assert outage.client.get("/readyz").json()["code"] == "STORE_UNAVAILABLE"
    assert outage.client.get("/healthz").status_code == 200


def test_a_token_never_verified_before_the_outage_cannot_be_checked_so_it_is_a_503(
    outage: Outage,
) -> None:
    response = outage.client.get(
        f"/v1/workspaces/{outage.workspace_id}/llm-billing-mode",
        headers=bearer("llmb_never-seen-before"),
    )

    assert response.status_code == 503
