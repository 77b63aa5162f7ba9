"""Errors name the field the caller sent and say what is allowed, in words (item 10): never
a column name, a validator's prefix or a regular expression."""

from __future__ import annotations

import pytest
from tests.api.api_fixtures import Api

from llmbilling.core.modes import MODE_VALUES


@pytest.mark.parametrize(
    ("path_of", "body"),
    [
        (lambda org, ws: f"/v1/orgs/{org}/llm-billing-mode-default", {"mode": "byokk"}),
        (lambda org, ws: f"/v1/workspaces/{ws}/llm-billing-mode", {"mode": "BYOK"}),
    ],
    ids=["org-default", "override"],
)
def test_a_bad_mode_names_mode_and_lists_the_modes(
    api: Api, path_of: object, body: dict[str, str]
) -> None:
    org_id, workspace_id = api.org_with_workspace()
    path = path_of(org_id, workspace_id)  # type: ignore[operator]

    response = api.client.put(path, headers=api.admin_headers(), json=body)

    problem = response.json()
    assert (response.status_code, problem["field"], problem["allowed"]) == (
        400,
        "mode",
        list(MODE_VALUES),
    )
    assert "llm_billing_mode" not in problem["message"]


@pytest.mark.parametrize(
    ("method", "path_of", "kwargs", "field"),
    [
        (
            "POST",
            lambda org, ws: f"/v1/workspaces/{ws}/provision-env",
            {"json": {"model": "a\x07b"}},
            "model",
        ),
        ("GET", lambda org, ws: "/v1/audit", {"params": {"cursor": "not a cursor!"}}, "cursor"),
        (
            "PUT",
            lambda org, ws: f"/v1/workspaces/{ws}/llm-billing-mode",
            {"json": {"mode": "byok", "extra": 1}},
            "extra",
        ),
        ("PUT", lambda org, ws: f"/v1/workspaces/{ws}/llm-billing-mode", {"json": {}}, "mode"),
    ],
    ids=["pattern", "query-pattern", "extra-field", "missing-field"],
)
def test_validation_messages_leak_no_validator_prefix_or_regex(
    api: Api, method: str, path_of: object, kwargs: dict[str, object], field: str
) -> None:
    org_id, workspace_id = api.org_with_workspace()
    path = path_of(org_id, workspace_id)  # type: ignore[operator]

    response = api.client.request(method, path, headers=api.admin_headers(), **kwargs)  # type: ignore[arg-type]

    problem = response.json()
    assert (response.status_code, problem["field"]) == (400, field)
    for leak in ("Value error", "String should match", "pattern", "^", "$", "Input should"):
        assert leak not in problem["message"]


def test_a_value_error_reads_without_its_prefix(api: Api) -> None:
    _, workspace_id = api.org_with_workspace()

    response = api.client.put(
        f"/v1/workspaces/{workspace_id}/llm-billing-mode",
        headers=api.admin_headers(),
        json={"mode": "byok", "expires_at": "2099-01-01T00:00:00"},
    )

    assert response.json()["message"].startswith("expires_at: must name its time zone")
