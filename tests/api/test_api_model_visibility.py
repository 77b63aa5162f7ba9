"""The model is configuration (docs/API.md "Secrets and the model"): a model kept as a
``MODEL``/``MOLECULE_MODEL`` secret is shown to every reader wherever the model shows, like the
workspace's model field; a credential's value shows on no route but ``provision-env``."""

from __future__ import annotations

import json
import uuid

import pytest
from tests.api.api_fixtures import Api, bearer
from tests.store.db_fixtures import stored_workspace

from llmbilling.service.tokens import Scope

# Registered nowhere: derivation fails and the record names the raw model as its provider.
UNREGISTERED_MODEL = "house-model-7"


@pytest.mark.parametrize(("scope", "name"), [("org", "MODEL"), ("workspace", "MOLECULE_MODEL")])
def test_a_viewer_sees_the_model_a_model_secret_names(api: Api, scope: str, name: str) -> None:
    org_id, workspace_id = stored_workspace(
        api.context,
        model=None,
        **{f"{scope}_secrets": {name: UNREGISTERED_MODEL}},  # type: ignore[arg-type]
    )
    response = api.client.get(
        f"/v1/workspaces/{workspace_id}/llm-billing-mode",
        headers=bearer(api.token(Scope.VIEWER, org_id)),
    )
    assert response.status_code == 200
    record = response.json()
    assert (record["derivation"]["outcome"], record["provider"]) == (
        "unregistered_model",
        UNREGISTERED_MODEL,
    )


def test_no_credential_value_reaches_a_viewer_only_provision_returns_it(api: Api) -> None:
    sentinel = f"SENTINEL-{uuid.uuid4().hex}"
    org_id, workspace_id = stored_workspace(
        api.context,
        org_default="byok",
        model=None,
        org_secrets={"MODEL": "claude-opus-4-7", "OPENAI_API_KEY": f"org-{sentinel}"},
        workspace_secrets={"ANTHROPIC_API_KEY": f"ws-{sentinel}"},
    )
    viewer = bearer(api.token(Scope.VIEWER, org_id))
    shown = [
        api.client.get(path, headers=viewer).text
        for path in (
            f"/v1/workspaces/{workspace_id}/llm-billing-mode",
            f"/v1/orgs/{org_id}/llm-billing-mode-default",
            f"/v1/orgs/{org_id}/workspaces",
            f"/v1/audit?org_id={org_id}",
        )
    ]
    provisioned = api.client.post(
        f"/v1/workspaces/{workspace_id}/provision-env", headers=api.admin_headers()
    )
    assert all(sentinel not in text for text in shown)
    assert provisioned.status_code == 200
    assert f"ws-{sentinel}" in json.dumps(provisioned.json()["env"])
