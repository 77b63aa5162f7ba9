"""``/v1/workspaces/{id}/llm-billing-mode``: the decision (GET), the override (PUT, DELETE)."""

from __future__ import annotations

import uuid

import pytest
from tests.api.api_fixtures import Api

from llmbilling.core.modes import MODE_VALUES

PROBLEM = "application/problem+json"


def _path(workspace_id: object) -> str:
    return f"/v1/workspaces/{workspace_id}/llm-billing-mode"


def test_the_decision_is_the_full_record_with_its_trace_and_an_etag(api: Api) -> None:
    _, workspace_id = api.org_with_workspace(model="gpt-5.5", runtime="codex")

    response = api.client.get(_path(workspace_id), headers=api.admin_headers())

    assert response.status_code == 200
    record = response.json()
    assert record["workspace_id"] == str(workspace_id)
    assert (record["mode"], record["source"], record["provider"]) == (
        "byok",
        "derived_provider",
        "openai-subscription",
    )
    assert [entry["rung"] for entry in record["trace"]] == [
        "workspace_override",
        "org_default",
        "derived_provider",
        "deployment_default",
    ]
    assert response.headers["etag"].startswith('"w1.o1.')


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("bad_id", ["not-a-uuid", "1234", "ws-1"])
def test_a_malformed_workspace_id_is_a_400_naming_the_field(
    api: Api, method: str, bad_id: str
) -> None:
    response = api.client.request(
        method, _path(bad_id), headers=api.admin_headers(), json={"mode": "byok"}
    )

    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "INVALID_INPUT"
    assert response.json()["field"] == "workspace_id"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_an_unknown_workspace_is_a_404(api: Api, method: str) -> None:
    unknown = uuid.uuid4()
    response = api.client.request(
        method, _path(unknown), headers=api.admin_headers(), json={"mode": "byok"}
    )

    assert response.status_code == 404
    assert response.json()["code"] == "WORKSPACE_NOT_FOUND"
    assert response.json()["message"] == f"no workspace with id {unknown}"


@pytest.mark.parametrize("mode", MODE_VALUES)
def test_put_sets_the_override_and_answers_the_new_decision(api: Api, mode: str) -> None:
    _, workspace_id = api.org_with_workspace()

    response = api.client.put(_path(workspace_id), headers=api.admin_headers(), json={"mode": mode})

    assert response.status_code == 200
    assert response.json()["mode"] == mode
    assert response.json()["source"] == "workspace_override"
    assert response.json()["workspace_override"] == mode


@pytest.mark.parametrize("mode", ["byokk", "BYOK", " byok", "", "platform-managed"])
def test_an_unknown_mode_is_a_400_listing_the_allowed_values(api: Api, mode: str) -> None:
    _, workspace_id = api.org_with_workspace()

    response = api.client.put(_path(workspace_id), headers=api.admin_headers(), json={"mode": mode})

    assert response.status_code == 400
    problem = response.json()
    assert (problem["code"], problem["field"]) == ("INVALID_INPUT", "mode")
    assert problem["allowed"] == list(MODE_VALUES)
    assert "platform_managed, byok, disabled" in problem["message"]


@pytest.mark.parametrize("body", [{}, {"mode": None}, {"mode": 3}, {"mode": "byok", "x": 1}])
def test_a_malformed_body_is_a_400(api: Api, body: dict[str, object]) -> None:
    _, workspace_id = api.org_with_workspace()

    response = api.client.put(_path(workspace_id), headers=api.admin_headers(), json=body)

    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_INPUT"


def test_delete_clears_the_override_so_the_workspace_inherits(api: Api) -> None:
    _, workspace_id = api.org_with_workspace()
    headers = api.admin_headers()
    api.client.put(_path(workspace_id), headers=headers, json={"mode": "disabled"})

    response = api.client.delete(_path(workspace_id), headers=headers)

    assert response.status_code == 200
    assert response.json()["workspace_override"] is None
    assert response.json()["source"] == "derived_provider"
    assert response.json()["mode"] == "platform_managed"


@pytest.mark.parametrize(
    ("method", "body", "action", "before", "after"),
    [
        ("PUT", {"mode": "byok"}, "workspace.override_set", None, "byok"),
        ("DELETE", None, "workspace.override_cleared", "disabled", None),
    ],
)
def test_each_override_write_is_audited_with_token_actor_before_after_and_request_id(
    api: Api,
    method: str,
    body: dict[str, str] | None,
    action: str,
    before: str | None,
    after: str | None,
) -> None:
    _, workspace_id = api.org_with_workspace()
    headers = api.admin_headers()
    if before is not None:
        api.client.put(_path(workspace_id), headers=headers, json={"mode": before})
    request_id = f"req-{uuid.uuid4()}"

    response = api.client.request(
        method, _path(workspace_id), headers={**headers, "X-Request-ID": request_id}, json=body
    )

    assert response.headers["x-request-id"] == request_id
    (entry,) = api.audit_entries(request_id)
    assert entry["action"] == action
    assert entry["actor"].startswith("token:")
    assert entry["workspace_id"] == workspace_id
    assert entry["before"] == {"llm_billing_mode": before}
    assert entry["after"] == {"llm_billing_mode": after}


@pytest.mark.parametrize(
    "request_id", ["", "two words", "x" * 129, "naïve".encode(), "semi;colon", "<script>"]
)
def test_a_request_id_that_is_not_short_and_plain_is_replaced_by_a_fresh_one(
    api: Api, request_id: str | bytes
) -> None:
    _, workspace_id = api.org_with_workspace()

    raw = request_id if isinstance(request_id, bytes) else request_id.encode()
    headers = [(name.encode(), value.encode()) for name, value in api.admin_headers().items()]
    response = api.client.put(
        _path(workspace_id), headers=[*headers, (b"X-Request-ID", raw)], json={"mode": "byok"}
    )

    echoed = response.headers["x-request-id"]
    assert echoed != request_id
    assert uuid.UUID(echoed)
    assert len(api.audit_entries(echoed)) == 1
