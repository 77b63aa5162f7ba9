"""Writes say why, and overrides may expire (item 9): a bounded ``reason`` kept in the audit
log; a write that changes nothing is answered as usual but not audited; ``expires_at`` in the
future, past which the override no longer decides (the trace says so and the ETag moves)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import update
from tests.api.api_fixtures import Api

from llmbilling.service import admin
from llmbilling.store.tables import workspaces


def _override_path(workspace_id: UUID) -> str:
    return f"/v1/workspaces/{workspace_id}/llm-billing-mode"


def _default_path(org_id: UUID) -> str:
    return f"/v1/orgs/{org_id}/llm-billing-mode-default"


def _put(api: Api, path: str, body: dict[str, Any]) -> tuple[Any, str]:
    request_id = f"req-{uuid.uuid4()}"
    response = api.client.put(
        path, headers={**api.admin_headers(), "X-Request-ID": request_id}, json=body
    )
    return response, request_id


def _later(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


@pytest.mark.parametrize("target", ["override", "org-default"])
def test_a_reason_is_kept_in_the_audit_entry_and_listed(api: Api, target: str) -> None:
    org_id, workspace_id = api.org_with_workspace()
    path = _override_path(workspace_id) if target == "override" else _default_path(org_id)

    response, request_id = _put(api, path, {"mode": "byok", "reason": "ticket 4711"})

    assert response.status_code == 200
    (entry,) = api.audit_entries(request_id)
    assert entry["after"]["reason"] == "ticket 4711"
    listed = api.client.get(
        "/v1/audit", params={"org_id": str(org_id)}, headers=api.admin_headers()
    ).json()["items"]
    assert listed[0]["reason"] == "ticket 4711"


@pytest.mark.parametrize(
    "reason",
    ["x" * 501, "two\nlines", "tab\there", "bell\x07"],
    ids=["too-long", "newline", "tab", "control"],
)
@pytest.mark.parametrize("target", ["override", "org-default"])
def test_a_reason_out_of_bounds_is_a_400_naming_reason(api: Api, target: str, reason: str) -> None:
    org_id, workspace_id = api.org_with_workspace()
    path = _override_path(workspace_id) if target == "override" else _default_path(org_id)

    response, request_id = _put(api, path, {"mode": "byok", "reason": reason})

    assert (response.status_code, response.json()["field"]) == (400, "reason")
    assert api.audit_entries(request_id) == []


@pytest.mark.parametrize("target", ["override", "org-default"])
def test_a_write_that_changes_nothing_is_answered_but_not_audited(api: Api, target: str) -> None:
    org_id, workspace_id = api.org_with_workspace()
    path = _override_path(workspace_id) if target == "override" else _default_path(org_id)
    first, _ = _put(api, path, {"mode": "byok"})

    again, request_id = _put(api, path, {"mode": "byok", "reason": "same again"})

    assert again.status_code == 200
    assert again.headers["etag"] == first.headers["etag"]
    assert again.json() == first.json()
    assert api.audit_entries(request_id) == []


@pytest.mark.parametrize(
    ("expires_at", "problem"),
    [
        ("2001-01-01T00:00:00Z", "must be in the future"),
        ("2099-01-01T00:00:00", "time zone"),
        ("next tuesday", "RFC 3339 date-time"),
        # A number of seconds is a time to pydantic, not to RFC 3339.
        ("4102444800", "RFC 3339 date-time"),
    ],
    ids=["past", "no-time-zone", "not-a-time", "seconds"],
)
def test_an_expiry_that_is_not_a_future_time_with_a_zone_is_a_400_naming_it(
    api: Api, expires_at: str, problem: str
) -> None:
    _, workspace_id = api.org_with_workspace()

    response, _ = _put(
        api, _override_path(workspace_id), {"mode": "byok", "expires_at": expires_at}
    )

    assert (response.status_code, response.json()["field"]) == (400, "expires_at")
    assert problem in response.json()["message"]


def test_an_override_decides_until_it_expires_then_the_trace_says_it_expired(api: Api) -> None:
    org_id, workspace_id = api.org_with_workspace()
    admin.set_org_default(api.context, org_id, "disabled")
    written, _ = _put(
        api, _override_path(workspace_id), {"mode": "byok", "expires_at": _later(days=1)}
    )
    assert (written.json()["source"], written.json()["mode"]) == ("workspace_override", "byok")

    # Time passing, as the store sees it: the expiry moves into the past.
    expired = datetime.now(UTC) - timedelta(minutes=1)
    with api.context.store.engine.begin() as connection:
        connection.execute(
            update(workspaces)
            .where(workspaces.c.id == workspace_id)
            .values(override_expires_at=expired)
        )
    read = api.client.get(_override_path(workspace_id), headers=api.admin_headers())

    record = read.json()
    assert (record["source"], record["mode"]) == ("org_default", "disabled")
    assert record["trace"][0]["status"] == "skipped"
    assert f"expired at {expired.isoformat()}" in record["trace"][0]["why"]
    assert read.headers["etag"] != written.headers["etag"]


def test_an_expiring_override_is_audited_with_its_expiry(api: Api) -> None:
    _, workspace_id = api.org_with_workspace()
    expires_at = datetime(2099, 6, 1, 8, 30, tzinfo=UTC)

    response, request_id = _put(
        api,
        _override_path(workspace_id),
        {"mode": "disabled", "expires_at": "2099-06-01T10:30:00+02:00"},
    )

    assert response.status_code == 200
    (entry,) = api.audit_entries(request_id)
    assert entry["after"] == {
        "llm_billing_mode": "disabled",
        "override_expires_at": expires_at.isoformat(),
    }
