"""``/v1/audit``: newest first, filtered by org, workspace and time, cursor-paginated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from tests.api.api_fixtures import Api


def _override_path(workspace_id: object) -> str:
    return f"/v1/workspaces/{workspace_id}/llm-billing-mode"


def test_entries_come_newest_first_and_filter_by_workspace(api: Api) -> None:
    _, workspace_id = api.org_with_workspace()
    headers = api.admin_headers()
    for mode in ("byok", "disabled", "platform_managed"):
        api.client.put(_override_path(workspace_id), headers=headers, json={"mode": mode})

    page = api.client.get(
        "/v1/audit", headers=headers, params={"workspace_id": str(workspace_id)}
    ).json()

    assert [entry["after"] for entry in page["items"][:3]] == [
        {"llm_billing_mode": "platform_managed"},
        {"llm_billing_mode": "disabled"},
        {"llm_billing_mode": "byok"},
    ]
    assert page["items"][3]["action"] == "workspace.created"
    assert {entry["workspace_id"] for entry in page["items"]} == {str(workspace_id)}


def test_the_org_filter_keeps_only_that_orgs_entries(api: Api) -> None:
    org_id, _ = api.org_with_workspace()
    api.org_with_workspace()

    page = api.client.get(
        "/v1/audit", headers=api.admin_headers(), params={"org_id": str(org_id)}
    ).json()

    assert [entry["action"] for entry in page["items"]] == ["workspace.created", "org.created"]


def test_the_cursor_pages_through_older_entries_without_overlap(api: Api) -> None:
    _, workspace_id = api.org_with_workspace()
    headers = api.admin_headers()
    for mode in ("byok", "disabled", "platform_managed", "byok"):
        api.client.put(_override_path(workspace_id), headers=headers, json={"mode": mode})
    params = {"workspace_id": str(workspace_id), "limit": "2"}

    first = api.client.get("/v1/audit", headers=headers, params=params).json()
    second = api.client.get(
        "/v1/audit", headers=headers, params={**params, "cursor": first["next_cursor"]}
    ).json()
    third = api.client.get(
        "/v1/audit", headers=headers, params={**params, "cursor": second["next_cursor"]}
    ).json()

    ids = [entry["id"] for page in (first, second, third) for entry in page["items"]]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == len(set(ids)) == 5
    assert third["next_cursor"] is None


def test_since_is_inclusive_and_until_exclusive(api: Api) -> None:
    _, workspace_id = api.org_with_workspace()
    headers = api.admin_headers()
    entries = api.client.get(
        "/v1/audit", headers=headers, params={"workspace_id": str(workspace_id)}
    ).json()["items"]
    (created,) = entries
    at = created["occurred_at"]
    later = (datetime.fromisoformat(at) + timedelta(microseconds=1)).isoformat()

    def count(**window: str) -> int:
        params = {"workspace_id": str(workspace_id), **window}
        return len(api.client.get("/v1/audit", headers=headers, params=params).json()["items"])

    assert (count(since=at), count(until=at), count(until=later), count(since=later)) == (
        1,
        0,
        1,
        0,
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"since": "2025-01-01T00:00:00"}, "since"),
        ({"until": "yesterday"}, "until"),
        # A number is a time to pydantic, not to RFC 3339 (the document's date-time).
        ({"until": "0.5"}, "until"),
        ({"since": "2025-01-01"}, "since"),
        # Valid RFC 3339, but past the last instant there is once taken to UTC.
        ({"until": "9999-12-31T23:59:59-23:59"}, "until"),
        ({"cursor": "-1"}, "cursor"),
        ({"cursor": "abc"}, "cursor"),
        ({"org_id": "acme"}, "org_id"),
        ({"limit": "0"}, "limit"),
    ],
)
def test_bad_audit_parameters_are_400s_naming_the_field(
    api: Api, query: dict[str, str], field: str
) -> None:
    response = api.client.get("/v1/audit", headers=api.admin_headers(), params=query)

    assert response.status_code == 400
    assert response.json()["field"] == field


def test_times_may_carry_any_offset_and_are_answered_in_utc(api: Api) -> None:
    _, workspace_id = api.org_with_workspace()
    india = timezone(timedelta(hours=5, minutes=30))
    since = (datetime.now(UTC) - timedelta(hours=1)).astimezone(india).isoformat()

    page = api.client.get(
        "/v1/audit",
        headers=api.admin_headers(),
        params={"workspace_id": str(workspace_id), "since": since},
    ).json()

    assert page["items"][0]["occurred_at"].endswith("+00:00")
