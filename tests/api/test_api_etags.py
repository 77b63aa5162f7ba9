"""ETags and If-Match: the decision's tag moves with its stored inputs; writes compare-and-set.

The decision's ETag covers the workspace row and its org's row (their ``row_version``, bumped
by every write of either) and a digest of the record (so secret names, the deployment, the
registry and the policy are covered too). Absent If-Match = an unconditional write.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from tests.api.api_fixtures import Api

from llmbilling.service import admin, secrets
from llmbilling.service.provision import provision_workspace


def _path(workspace_id: object) -> str:
    return f"/v1/workspaces/{workspace_id}/llm-billing-mode"


def _org_path(org_id: object) -> str:
    return f"/v1/orgs/{org_id}/llm-billing-mode-default"


def _etag(api: Api, workspace_id: UUID, headers: dict[str, str]) -> str:
    return str(api.client.get(_path(workspace_id), headers=headers).headers["etag"])


def _set_org_default(api: Api, org_id: UUID, _workspace_id: UUID) -> None:
    admin.set_org_default(api.context, org_id, "byok")


def _set_override(api: Api, _org_id: UUID, workspace_id: UUID) -> None:
    admin.set_override(api.context, workspace_id, "disabled")


def _provision_with_a_new_model(api: Api, _org_id: UUID, workspace_id: UUID) -> None:
    provision_workspace(api.context, workspace_id, request_model="platform/gpt-5.5")


def _add_a_credential_that_changes_the_derivation(
    api: Api, org_id: UUID, _workspace_id: UUID
) -> None:
    secrets.set_secret(api.context, "org", org_id, "ANTHROPIC_API_KEY", "sk-ant-x")


@pytest.mark.parametrize(
    "change",
    [
        _set_org_default,
        _set_override,
        _provision_with_a_new_model,
        _add_a_credential_that_changes_the_derivation,
    ],
)
def test_the_decision_etag_changes_whenever_a_stored_input_changes(
    api: Api, change: Callable[[Api, UUID, UUID], None]
) -> None:
    org_id, workspace_id = api.org_with_workspace(model="opus")
    headers = api.admin_headers()
    before = _etag(api, workspace_id, headers)

    change(api, org_id, workspace_id)

    assert _etag(api, workspace_id, headers) != before


def test_the_decision_etag_stays_put_while_nothing_changes(api: Api) -> None:
    _, workspace_id = api.org_with_workspace()
    headers = api.admin_headers()
    other_org, _ = api.org_with_workspace()
    first = _etag(api, workspace_id, headers)

    admin.set_org_default(api.context, other_org, "disabled")

    assert _etag(api, workspace_id, headers) == first


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_a_write_with_the_current_etag_succeeds_and_answers_a_new_one(
    api: Api, method: str
) -> None:
    _, workspace_id = api.org_with_workspace()
    admin.set_override(api.context, workspace_id, "disabled")  # so both methods change it
    headers = api.admin_headers()
    current = _etag(api, workspace_id, headers)

    response = api.client.request(
        method, _path(workspace_id), headers={**headers, "If-Match": current}, json={"mode": "byok"}
    )

    assert response.status_code == 200
    assert response.headers["etag"] != current
    assert response.headers["etag"] == _etag(api, workspace_id, headers)


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_a_write_with_a_stale_etag_is_412_and_changes_nothing(api: Api, method: str) -> None:
    _, workspace_id = api.org_with_workspace()
    headers = api.admin_headers()
    stale = _etag(api, workspace_id, headers)
    admin.set_override(api.context, workspace_id, "disabled")
    request_id = f"req-{uuid.uuid4()}"

    response = api.client.request(
        method,
        _path(workspace_id),
        headers={**headers, "If-Match": stale, "X-Request-ID": request_id},
        json={"mode": "byok"},
    )

    assert response.status_code == 412
    assert response.json()["code"] == "PRECONDITION_FAILED"
    assert api.client.get(_path(workspace_id), headers=headers).json()["mode"] == "disabled"
    assert api.audit_entries(request_id) == []


@pytest.mark.parametrize(
    ("if_match", "status"),
    [
        (None, 200),
        ("*", 200),
        ('"w1.o1.0000000000000000"', 412),
        # Not an entity tag nor "*": the header is malformed, a 400 naming it (RFC 9110 §13.1.1).
        ("not-a-tag", 400),
        ("CURRENT_WEAK", 412),
        ('"w9.o9.0000000000000000", CURRENT', 200),
    ],
)
def test_if_match_forms(api: Api, if_match: str | None, status: int) -> None:
    _, workspace_id = api.org_with_workspace()
    headers = api.admin_headers()
    current = _etag(api, workspace_id, headers)
    if if_match is not None:
        if_match = if_match.replace("CURRENT_WEAK", f"W/{current}").replace("CURRENT", current)
        headers = {**headers, "If-Match": if_match}

    response = api.client.put(_path(workspace_id), headers=headers, json={"mode": "byok"})

    assert response.status_code == status


def test_of_two_writers_holding_the_same_etag_exactly_one_wins(api: Api) -> None:
    _, workspace_id = api.org_with_workspace()
    headers = api.admin_headers()
    current = _etag(api, workspace_id, headers)
    start = threading.Barrier(2)
    statuses: list[int] = []

    def write(mode: str) -> None:
        with TestClient(api.app) as client:
            start.wait()
            response = client.put(
                _path(workspace_id), headers={**headers, "If-Match": current}, json={"mode": mode}
            )
            statuses.append(response.status_code)

    writers = [threading.Thread(target=write, args=(mode,)) for mode in ("byok", "disabled")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()

    assert sorted(statuses) == [200, 412]


def test_the_org_default_honours_if_match(api: Api) -> None:
    org_id, _ = api.org_with_workspace()
    headers = api.admin_headers()
    current = api.client.get(_org_path(org_id), headers=headers).headers["etag"]

    first = api.client.put(
        _org_path(org_id), headers={**headers, "If-Match": current}, json={"mode": "byok"}
    )
    second = api.client.put(
        _org_path(org_id), headers={**headers, "If-Match": current}, json={"mode": "disabled"}
    )

    assert (first.status_code, second.status_code) == (200, 412)
    assert api.client.get(_org_path(org_id), headers=headers).json()["raw"] == "byok"


def test_an_org_default_write_makes_the_decision_etag_stale(api: Api) -> None:
    org_id, workspace_id = api.org_with_workspace()
    headers = api.admin_headers()
    seen = _etag(api, workspace_id, headers)
    api.client.put(_org_path(org_id), headers=headers, json={"mode": "byok"})

    response = api.client.put(
        _path(workspace_id), headers={**headers, "If-Match": seen}, json={"mode": "disabled"}
    )

    assert response.status_code == 412
