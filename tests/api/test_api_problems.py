"""Every error, expected or not, answers one problem shape with the request id."""

from __future__ import annotations

import io
import json
import uuid

from fastapi.testclient import TestClient
from tests.api.api_fixtures import Api, bearer
from tests.store.db_fixtures import SAAS_PROXY, ContextFactory

from llmbilling.api.app import create_app
from llmbilling.config.registry import built_in_registry
from llmbilling.service import admin
from llmbilling.service.context import DeploymentInputs, ServiceContext
from llmbilling.service.tokens import Scope, create_token
from llmbilling.store.crypto import KeyRing

PROBLEM_MEMBERS = {"type", "title", "status", "code", "message"}


def test_an_unknown_route_is_a_404_problem(api: Api) -> None:
    response = api.client.get("/v2/anything")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "urn:llmbilling:problem:not-found",
        "title": "Not Found",
        "status": 404,
        "code": "NOT_FOUND",
        "message": "no route /v2/anything",
    }


def test_a_method_the_route_lacks_is_a_405_problem_naming_the_allowed_ones(api: Api) -> None:
    response = api.client.post("/healthz")

    assert response.status_code == 405
    assert response.json()["code"] == "METHOD_NOT_ALLOWED"
    assert response.headers["allow"] == "GET, OPTIONS"


def test_options_answers_204_with_every_method_of_the_resource(api: Api) -> None:
    workspace_path = f"/v1/workspaces/{uuid.uuid4()}/llm-billing-mode"

    response = api.client.options(workspace_path)

    assert (response.status_code, response.content) == (204, b"")
    assert response.headers["allow"] == "DELETE, GET, OPTIONS, PUT"
    assert api.client.patch(workspace_path).headers["allow"] == "DELETE, GET, OPTIONS, PUT"


class _BrokenKeyRingError(RuntimeError):
    """Not one of our typed errors: stands for a bug."""


def _failing_key_ring() -> KeyRing:
    raise _BrokenKeyRingError("internal detail")


def test_an_unexpected_exception_is_a_500_problem_logged_with_its_request_id(
    make_context: ContextFactory, captured_logs: io.StringIO
) -> None:
    store_context = make_context()
    context = ServiceContext(
        store_context.store,
        DeploymentInputs(proxy=SAAS_PROXY, org_default=None),
        built_in_registry(),
        key_ring_loader=_failing_key_ring,
    )
    org = admin.create_org(context, "bug")
    workspace = admin.create_workspace(context, org.id, model="platform/claude-opus-4-7")
    token = create_token(context, scope=Scope.ADMIN).token

    with TestClient(create_app(context=context)) as client:
        response = client.post(
            f"/v1/workspaces/{workspace.id}/provision-env",
            headers={**bearer(token), "X-Request-ID": "bug-1"},
        )

    assert response.status_code == 500
    assert response.headers["x-request-id"] == "bug-1"
    assert set(response.json()) == PROBLEM_MEMBERS
    assert response.json()["code"] == "INTERNAL_ERROR"
    assert "internal detail" not in response.text
    failures = [
        line
        for line in map(json.loads, captured_logs.getvalue().splitlines())
        if line["event"] == "unhandled_error"
    ]
    assert [line["request_id"] for line in failures] == ["bug-1"]
    assert "_BrokenKeyRingError" in failures[0]["exception"]
