"""``/v1/workspaces/{id}/provision-env``: the env (values inside), and typed errors as 409/422."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from tests.api.api_fixtures import Api
from tests.store.db_fixtures import SAAS_PROXY, SELF_HOST, ContextFactory

from llmbilling.api.app import create_app
from llmbilling.service import admin, secrets
from llmbilling.service.tokens import Scope, create_token


def _path(workspace_id: object) -> str:
    return f"/v1/workspaces/{workspace_id}/provision-env"


def test_provisioning_answers_the_env_uncached_and_audits_it(api: Api) -> None:
    _, workspace_id = api.org_with_workspace(model="platform/claude-opus-4-7")
    request_id = f"req-{uuid.uuid4()}"

    response = api.client.post(
        _path(workspace_id), headers={**api.admin_headers(), "X-Request-ID": request_id}
    )

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    provisioned = response.json()
    assert (provisioned["mode"], provisioned["source"]) == ("platform_managed", "derived_provider")
    assert provisioned["env"]["ANTHROPIC_API_KEY"] == SAAS_PROXY.usage_token
    assert provisioned["env_names"] == sorted(provisioned["env"])
    assert [entry["action"] for entry in api.audit_entries(request_id)] == ["workspace.provisioned"]


def test_the_request_model_is_used_and_kept_on_the_workspace(api: Api) -> None:
    _, workspace_id = api.org_with_workspace(model="opus")

    response = api.client.post(
        _path(workspace_id), headers=api.admin_headers(), json={"model": "platform:gpt-5.5"}
    )

    assert response.json()["model"] == "platform:gpt-5.5"
    assert admin.get_workspace(api.context, workspace_id).model == "platform:gpt-5.5"


def _no_model(api: Api) -> uuid.UUID:
    org = admin.create_org(api.context, "no-model")
    return admin.create_workspace(api.context, org.id, model=None).id


def _vendor_model_without_credential(api: Api) -> uuid.UUID:
    return api.org_with_workspace(model="gpt-5.5", runtime="codex")[1]


@pytest.mark.parametrize(
    ("make_workspace", "status", "code"),
    [
        (_no_model, 422, "MISSING_MODEL"),
        (_vendor_model_without_credential, 409, "MISSING_BYOK_CREDENTIAL"),
    ],
)
def test_provisioning_errors_are_problems_with_their_stable_codes(
    api: Api, make_workspace: Callable[[Api], uuid.UUID], status: int, code: str
) -> None:
    workspace_id = make_workspace(api)

    response = api.client.post(_path(workspace_id), headers=api.admin_headers())

    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


def test_platform_managed_without_a_proxy_is_a_409(make_context: ContextFactory) -> None:
    context = make_context(proxy=SELF_HOST)
    org = admin.create_org(context, "self-host")
    workspace = admin.create_workspace(
        context, org.id, model="gpt-5.5", override="platform_managed"
    )
    token = create_token(context, scope=Scope.ADMIN).token

    with TestClient(create_app(context=context)) as client:
        response = client.post(_path(workspace.id), headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 409
    assert response.json()["code"] == "MISSING_PLATFORM_PROXY"


def test_a_byok_workspace_gets_its_own_credential_and_no_proxy(api: Api) -> None:
    org_id, workspace_id = api.org_with_workspace(model="gpt-5.5", runtime="codex")
    secrets.set_secret(api.context, "org", org_id, "OPENAI_API_KEY", "sk-own-key")

    env = api.client.post(_path(workspace_id), headers=api.admin_headers()).json()["env"]

    assert env["OPENAI_API_KEY"] == "sk-own-key"
    assert "MOLECULE_LLM_USAGE_TOKEN" not in env
