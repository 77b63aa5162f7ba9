"""``/ofrep/v1``: OFREP evaluation of the billing decision (docs/OFREP.md), on both engines.

Every answer is checked against the OFREP document's schema for its operation and status
(``tests/api/ofrep_document.py``), and every value against the decision GET's record.
"""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from tests.api.api_fixtures import Api, bearer
from tests.api.ofrep_document import (
    BULK_SCHEMAS,
    SINGLE_SCHEMAS,
    problems_of,
    the_document_as_written_rejects_every_valued_answer,
)
from tests.api.test_api_outage import Outage, outage
from tests.store.db_fixtures import SELF_HOST, ContextFactory

from llmbilling.api.app import create_app
from llmbilling.core.ofrep import FLAG_KEYS, MODE_FLAG, PROVIDER_FLAG, WOULD_PROVISION_FLAG
from llmbilling.service import admin, secrets
from llmbilling.service.audit import AuditContext
from llmbilling.service.tokens import Scope, create_token

BULK = "/ofrep/v1/evaluate/flags"
__all__ = ["outage"]  # the store outage fixture, shared with test_api_outage.py
WHO = AuditContext(actor="test", request_id="test")


def _single(key: str) -> str:
    return f"{BULK}/{key}"


def _evaluate(api: Api, key: str, context: dict[str, Any], token: str | None = None) -> Any:
    headers = bearer(token) if token else api.admin_headers()
    response = api.client.post(_single(key), json={"context": context}, headers=headers)
    assert problems_of(SINGLE_SCHEMAS[response.status_code], response.json()) == []
    return response


def _record(api: Api, workspace_id: UUID) -> dict[str, Any]:
    response = api.client.get(
        f"/v1/workspaces/{workspace_id}/llm-billing-mode", headers=api.admin_headers()
    )
    assert response.status_code == 200
    record: dict[str, Any] = response.json()
    return record


def test_the_documents_own_schema_needs_its_one_correction() -> None:
    # If the OFREP document is fixed upstream, the correction in ofrep_document.py goes.
    assert the_document_as_written_rejects_every_valued_answer()


SCENARIOS = [
    # (override, org default, runtime, model, expected mode, expected reason)
    ("byok", "platform_managed", "claude-code", "platform/claude-opus-4-7", "byok",
     "TARGETING_MATCH"),
    (None, "disabled", "codex", "gpt-5.5", "disabled", "TARGETING_MATCH"),
    (None, None, "codex", "gpt-5.5", "byok", "TARGETING_MATCH"),
    (None, None, "claude-code", "platform/claude-opus-4-7", "platform_managed",
     "TARGETING_MATCH"),
    (None, None, "claude-code", "no-such-model", "platform_managed", "STATIC"),
]  # fmt: skip


@pytest.mark.parametrize(("override", "org_default", "runtime", "model", "mode", "reason"),
                         SCENARIOS)  # fmt: skip
def test_the_mode_flag_is_the_decision_the_get_returns(
    api: Api,
    override: str | None,
    org_default: str | None,
    runtime: str,
    model: str,
    mode: str,
    reason: str,
) -> None:
    org = admin.create_org(api.context, f"org-{uuid.uuid4().hex[:6]}")
    if org_default is not None:
        admin.set_org_default(api.context, org.id, org_default, audit_context=WHO)
    workspace = admin.create_workspace(
        api.context, org.id, runtime=runtime, model=model, override=override
    )
    record = _record(api, workspace.id)

    answer = _evaluate(api, MODE_FLAG, {"targetingKey": str(workspace.id)}).json()

    assert (answer["key"], answer["value"], answer["reason"]) == (MODE_FLAG, mode, reason)
    assert answer["value"] == record["mode"]
    assert answer["metadata"]["source"] == record["source"]
    assert answer["metadata"]["policyVersion"] == record["versions"]["policy"]
    assert answer["metadata"]["registryVersion"] == record["versions"]["registry"]


def test_the_provider_flag_is_the_derived_provider(api: Api) -> None:
    _, workspace_id = api.org_with_workspace(model="gpt-5.5", runtime="codex")

    answer = _evaluate(api, PROVIDER_FLAG, {"targetingKey": str(workspace_id)}).json()

    assert (answer["value"], answer["reason"]) == (_record(api, workspace_id)["provider"],
                                                   "TARGETING_MATCH")  # fmt: skip


def test_the_provider_flag_has_no_value_when_nothing_was_derived(api: Api) -> None:
    _, workspace_id = api.org_with_workspace(model="no-such-model", runtime="claude-code")

    answer = _evaluate(api, PROVIDER_FLAG, {"targetingKey": str(workspace_id)}).json()

    assert "value" not in answer
    assert answer["variant"] == "none"
    assert answer["metadata"]["derivationOutcome"] == "unregistered_model"


def test_the_would_provision_flag_turns_true_when_the_credential_is_stored(api: Api) -> None:
    org_id, workspace_id = api.org_with_workspace(model="gpt-5.5", runtime="codex")
    before = _evaluate(api, WOULD_PROVISION_FLAG, {"targetingKey": str(workspace_id)}).json()
    satisfied_by = _record(api, workspace_id)["provisioning"]["satisfied_by"]

    secrets.set_secret(api.context, "org", org_id, satisfied_by[0], "sk-test-value")
    after = _evaluate(api, WOULD_PROVISION_FLAG, {"targetingKey": str(workspace_id)}).json()

    assert (before["value"], before["variant"]) == (False, "MISSING_BYOK_CREDENTIAL")
    assert (after["value"], after["variant"]) == (True, "ok")


def test_an_unknown_flag_is_404_flag_not_found(api: Api) -> None:
    _, workspace_id = api.org_with_workspace()

    response = _evaluate(api, "dark-mode", {"targetingKey": str(workspace_id)})

    assert response.status_code == 404
    assert response.json()["errorCode"] == "FLAG_NOT_FOUND"


@pytest.mark.parametrize(
    ("body", "code", "named"),
    [
        (b"{not json", "PARSE_ERROR", "JSON"),
        (b"[]", "INVALID_CONTEXT", "object"),
        (b"{}", "INVALID_CONTEXT", "context"),
        (b'{"context": {}}', "TARGETING_KEY_MISSING", "context.targetingKey"),
        (b'{"context": {"targetingKey": ""}}', "TARGETING_KEY_MISSING", "context.targetingKey"),
        (b'{"context": {"targetingKey": 7}}', "INVALID_CONTEXT", "context.targetingKey"),
        (b'{"context": {"targetingKey": "ws-1"}}', "INVALID_CONTEXT", "context.targetingKey"),
        (b'{"context": {"orgId": "acme"}}', "INVALID_CONTEXT", "context.orgId"),
        (
            b'{"context": {"orgId": "00000000-0000-0000-0000-000000000001", "model": 3}}',
            "INVALID_CONTEXT",
            "context.model",
        ),
    ],
)
def test_a_bad_context_is_400_with_the_ofrep_error_code_naming_the_member(
    api: Api, body: bytes, code: str, named: str
) -> None:
    for path, schemas in ((_single(MODE_FLAG), SINGLE_SCHEMAS), (BULK, BULK_SCHEMAS)):
        response = api.client.post(
            path,
            content=body,
            headers={**api.admin_headers(), "Content-Type": "application/json"},
        )
        assert response.status_code == 400
        answer = response.json()
        assert problems_of(schemas[400], answer) == []
        assert answer["errorCode"] == code
        assert named in answer["errorDetails"]


def test_a_foreign_workspace_gets_the_answer_an_unknown_one_gets(api: Api) -> None:
    _, foreign_workspace = api.org_with_workspace()
    own_org, _ = api.org_with_workspace()
    viewer = api.token(Scope.VIEWER, own_org)

    foreign = _evaluate(api, MODE_FLAG, {"targetingKey": str(foreign_workspace)}, viewer)
    unknown = _evaluate(api, MODE_FLAG, {"targetingKey": str(uuid.uuid4())}, viewer)

    assert foreign.status_code == unknown.status_code == 400
    assert foreign.json()["errorDetails"] == unknown.json()["errorDetails"]
    assert foreign.json()["errorCode"] == unknown.json()["errorCode"] == "INVALID_CONTEXT"


def test_a_viewer_of_the_org_evaluates_its_workspace(api: Api) -> None:
    org_id, workspace_id = api.org_with_workspace()
    viewer = api.token(Scope.VIEWER, org_id)

    answer = _evaluate(api, MODE_FLAG, {"targetingKey": str(workspace_id)}, viewer)

    assert answer.status_code == 200
    assert answer.json()["value"] == _record(api, workspace_id)["mode"]


@pytest.mark.parametrize("path", [_single(MODE_FLAG), BULK])
def test_without_a_token_evaluation_is_401(api: Api, path: str) -> None:
    response = api.client.post(path, json={"context": {"targetingKey": str(uuid.uuid4())}})
    assert response.status_code == 401


def test_the_pre_provision_path_decides_from_the_org_default_runtime_and_model(api: Api) -> None:
    org = admin.create_org(api.context, f"org-{uuid.uuid4().hex[:6]}")
    context = {"orgId": str(org.id), "runtime": "codex", "model": "gpt-5.5"}
    derived = _evaluate(api, MODE_FLAG, context).json()

    admin.set_org_default(api.context, org.id, "disabled", audit_context=WHO)
    defaulted = _evaluate(api, MODE_FLAG, context).json()

    assert (derived["value"], derived["metadata"]["source"]) == ("byok", "derived_provider")
    assert (defaulted["value"], defaulted["metadata"]["source"]) == ("disabled", "org_default")


def test_the_pre_provision_path_counts_the_orgs_secret_names(api: Api) -> None:
    org = admin.create_org(api.context, f"org-{uuid.uuid4().hex[:6]}")
    context = {"orgId": str(org.id), "runtime": "codex", "model": "gpt-5.5"}
    assert _evaluate(api, WOULD_PROVISION_FLAG, context).json()["value"] is False

    workspace = admin.create_workspace(api.context, org.id, runtime="codex", model="gpt-5.5")
    needed = _record(api, workspace.id)["provisioning"]["satisfied_by"][0]
    secrets.set_secret(api.context, "org", org.id, needed, "sk-test-value")

    assert _evaluate(api, WOULD_PROVISION_FLAG, context).json()["value"] is True


def test_a_foreign_org_gets_the_answer_an_unknown_one_gets(api: Api) -> None:
    foreign_org, _ = api.org_with_workspace()
    own_org, _ = api.org_with_workspace()
    viewer = api.token(Scope.VIEWER, own_org)

    foreign = _evaluate(api, MODE_FLAG, {"orgId": str(foreign_org)}, viewer)
    unknown = _evaluate(api, MODE_FLAG, {"orgId": str(uuid.uuid4())}, viewer)
    admin_unknown = _evaluate(api, MODE_FLAG, {"orgId": str(uuid.uuid4())})

    assert foreign.status_code == unknown.status_code == admin_unknown.status_code == 400
    assert foreign.json() == unknown.json() == admin_unknown.json()


def test_bulk_evaluation_answers_every_flag_with_an_etag_and_the_event_stream(api: Api) -> None:
    _, workspace_id = api.org_with_workspace(model="gpt-5.5", runtime="codex")
    headers = api.admin_headers()

    response = api.client.post(
        BULK, json={"context": {"targetingKey": str(workspace_id)}}, headers=headers
    )

    assert response.status_code == 200
    answer = response.json()
    assert problems_of(BULK_SCHEMAS[200], answer) == []
    assert [flag["key"] for flag in answer["flags"]] == list(FLAG_KEYS)
    assert answer["flags"][0]["value"] == _record(api, workspace_id)["mode"]
    assert answer["eventStreams"] == [
        {"type": "sse", "endpoint": {"requestUri": "/ofrep/v1/event-stream"}}
    ]
    assert response.headers["etag"].startswith('"f')


def test_bulk_if_none_match_is_304_until_a_decision_changes(api: Api) -> None:
    _, workspace_id = api.org_with_workspace(model="gpt-5.5", runtime="codex")
    headers = api.admin_headers()
    body = {"context": {"targetingKey": str(workspace_id)}}
    etag = api.client.post(BULK, json=body, headers=headers).headers["etag"]

    unchanged = api.client.post(BULK, json=body, headers={**headers, "If-None-Match": etag})
    admin.set_override(api.context, workspace_id, "disabled", audit_context=WHO)
    changed = api.client.post(BULK, json=body, headers={**headers, "If-None-Match": etag})

    assert unchanged.status_code == 304
    assert unchanged.headers["etag"] == etag
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert changed.json()["flags"][0]["value"] == "disabled"


@pytest.mark.parametrize(
    ("self_host", "available", "default"),
    [(False, True, "platform_managed"), (True, False, "byok")],
)
def test_the_deployment_route_tells_whether_platform_managed_is_available(
    make_context: ContextFactory, self_host: bool, available: bool, default: str
) -> None:
    context = make_context(proxy=SELF_HOST) if self_host else make_context()
    org = admin.create_org(context, f"org-{uuid.uuid4().hex[:6]}")
    viewer = create_token(context, scope=Scope.VIEWER, org_id=org.id).token
    with TestClient(create_app(context=context)) as client:
        response = client.get("/v1/deployment", headers=bearer(viewer))
        anonymous = client.get("/v1/deployment")

    assert response.status_code == 200
    assert response.json() == {
        "platform_managed_available": available,
        "deployment_default": default,
        "policy_version": context.policy.version,
        "registry_version": None if context.registry is None else context.registry.version,
    }
    assert anonymous.status_code == 401


def test_through_a_store_outage_evaluation_answers_the_gets_constant_fallback(
    outage: Outage,
) -> None:
    body = {"context": {"targetingKey": str(outage.workspace_id)}}
    record = outage.client.get(
        f"/v1/workspaces/{outage.workspace_id}/llm-billing-mode", headers=outage.headers
    ).json()

    single = outage.client.post(_single(MODE_FLAG), json=body, headers=outage.headers)
    bulk = outage.client.post(BULK, json=body, headers=outage.headers)

    assert single.status_code == bulk.status_code == 200
    answer = single.json()
    assert problems_of(SINGLE_SCHEMAS[200], answer) == []
    assert problems_of(BULK_SCHEMAS[200], bulk.json()) == []
    assert (answer["value"], answer["reason"]) == (record["mode"], "UNKNOWN")
    assert answer["metadata"]["source"] == "constant_fallback"
    assert answer["metadata"]["errorCode"] == "OVERRIDE_READ_FAILED"
    # Nothing stored was read: no tag, so no condition can hold.
    assert "etag" not in bulk.headers


@pytest.mark.parametrize(
    ("last_modified", "accepted"),
    [
        ("1771622898", True),
        ("0", True),
        ("2026-02-20T21:28:18Z", True),
        ("2026-02-20t21:28:18.5+01:00", True),
        ("-90411", False),
        ("2026-13-20T21:28:18Z", False),
        ("yesterday", False),
        ("١٢٣", False),
    ],
)
def test_refetch_metadata_is_checked_as_the_document_defines_it(
    api: Api, last_modified: str, accepted: bool
) -> None:
    _, workspace_id = api.org_with_workspace()

    response = api.client.post(
        BULK,
        params={"flagConfigEtag": "anything", "flagConfigLastModified": last_modified},
        json={"context": {"targetingKey": str(workspace_id)}},
        headers=api.admin_headers(),
    )

    assert response.status_code == (200 if accepted else 400)
    if not accepted:
        assert problems_of(BULK_SCHEMAS[400], response.json()) == []
        assert "flagConfigLastModified" in response.json()["errorDetails"]
