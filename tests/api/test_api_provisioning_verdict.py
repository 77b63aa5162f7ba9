"""Every decision read says what provisioning would do now (item 1): the record's
``provisioning`` object, and the fleet listing's ``provisioning`` filter."""

from __future__ import annotations

from uuid import UUID

import pytest
from tests.api.api_fixtures import Api

from llmbilling.service import admin, secrets
from llmbilling.service.admin import PROVISIONING_FILTER_VALUES


def _decision(api: Api, workspace_id: UUID) -> dict[str, object]:
    response = api.client.get(
        f"/v1/workspaces/{workspace_id}/llm-billing-mode", headers=api.admin_headers()
    )
    assert response.status_code == 200
    return dict(response.json())


def test_the_decision_record_names_the_credential_a_byok_provision_lacks(api: Api) -> None:
    _, workspace_id = api.org_with_workspace(model="gemini-2.5-pro", runtime="gemini-cli")
    assert _decision(api, workspace_id)["provisioning"] == {
        "status": "MISSING_BYOK_CREDENTIAL",
        "provider": "google",
        "satisfied_by": ["GEMINI_API_KEY", "GOOGLE_API_KEY"],
    }


def test_a_credential_makes_the_verdict_ok(api: Api) -> None:
    org_id, workspace_id = api.org_with_workspace(model="gemini-2.5-pro", runtime="gemini-cli")
    secrets.set_secret(api.context, "org", org_id, "GEMINI_API_KEY", "g-key")
    assert _decision(api, workspace_id)["provisioning"] == {
        "status": "ok",
        "provider": None,
        "satisfied_by": [],
    }


@pytest.fixture
def fleet(api: Api) -> tuple[UUID, dict[str, UUID]]:
    """One org: a workspace that provisions, one lacking a credential, one lacking a model."""
    org = admin.create_org(api.context, "fleet")
    ready = admin.create_workspace(
        api.context, org.id, model="claude-opus-4-7", override="disabled"
    )
    keyless = admin.create_workspace(
        api.context, org.id, runtime="gemini-cli", model="gemini-2.5-pro"
    )
    modelless = admin.create_workspace(api.context, org.id, model=None, override="disabled")
    return org.id, {"ok": ready.id, "keyless": keyless.id, "modelless": modelless.id}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ok", {"ok"}),
        ("failing", {"keyless", "modelless"}),
        ("MISSING_BYOK_CREDENTIAL", {"keyless"}),
        ("MISSING_MODEL", {"modelless"}),
        ("MISSING_PLATFORM_PROXY", set()),
    ],
)
def test_the_fleet_listing_filters_on_the_provisioning_verdict(
    api: Api, fleet: tuple[UUID, dict[str, UUID]], value: str, expected: set[str]
) -> None:
    org_id, workspaces = fleet
    response = api.client.get(
        f"/v1/orgs/{org_id}/workspaces",
        params={"provisioning": value},
        headers=api.admin_headers(),
    )
    assert response.status_code == 200
    listed = {UUID(item["workspace"]["id"]) for item in response.json()["items"]}
    assert listed == {workspaces[name] for name in expected}


def test_an_unknown_provisioning_filter_is_a_400_naming_the_field_and_values(
    api: Api, fleet: tuple[UUID, dict[str, UUID]]
) -> None:
    org_id, _ = fleet
    response = api.client.get(
        f"/v1/orgs/{org_id}/workspaces",
        params={"provisioning": "broken"},
        headers=api.admin_headers(),
    )
    assert response.status_code == 400
    assert (response.json()["field"], response.json()["allowed"]) == (
        "provisioning",
        list(PROVISIONING_FILTER_VALUES),
    )
