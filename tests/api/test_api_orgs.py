"""``/v1/orgs/{id}/llm-billing-mode-default`` and ``/v1/orgs/{id}/workspaces``."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from uuid import UUID

import pytest
from tests.api.api_fixtures import Api

from llmbilling.core.modes import MODE_VALUES
from llmbilling.service import admin
from llmbilling.service.admin import SOURCE_VALUES


def _default_path(org_id: object) -> str:
    return f"/v1/orgs/{org_id}/llm-billing-mode-default"


def _list_path(org_id: object) -> str:
    return f"/v1/orgs/{org_id}/workspaces"


@pytest.mark.parametrize(
    ("raw", "recognized"),
    [("byok", "byok"), ("  BYOK ", "byok"), ("Platform_Managed", "platform_managed")],
)
def test_put_stores_the_org_default_raw_and_answers_what_it_normalizes_to(
    api: Api, raw: str, recognized: str
) -> None:
    org_id, _ = api.org_with_workspace()
    headers = api.admin_headers()

    written = api.client.put(_default_path(org_id), headers=headers, json={"mode": raw})
    read = api.client.get(_default_path(org_id), headers=headers)

    expected = {"org_id": str(org_id), "raw": raw, "recognized": recognized}
    assert written.status_code == read.status_code == 200
    assert written.json() == read.json() == expected
    assert written.headers["etag"] == read.headers["etag"] == '"o2"'


def test_put_null_removes_the_org_default(api: Api) -> None:
    org_id, _ = api.org_with_workspace()
    headers = api.admin_headers()
    api.client.put(_default_path(org_id), headers=headers, json={"mode": "byok"})

    response = api.client.put(_default_path(org_id), headers=headers, json={"mode": None})

    assert response.json() == {"org_id": str(org_id), "raw": None, "recognized": None}


@pytest.mark.parametrize("raw", ["byokk", "", "platform-managed"])
def test_an_org_default_that_is_no_mode_is_a_400_listing_the_allowed_values(
    api: Api, raw: str
) -> None:
    org_id, _ = api.org_with_workspace()

    response = api.client.put(
        _default_path(org_id), headers=api.admin_headers(), json={"mode": raw}
    )

    assert response.status_code == 400
    assert response.json()["field"] == "mode"
    assert response.json()["allowed"] == list(MODE_VALUES)


def test_the_org_default_write_is_audited_with_before_and_after(api: Api) -> None:
    org_id, _ = api.org_with_workspace()
    request_id = f"req-{uuid.uuid4()}"

    api.client.put(
        _default_path(org_id),
        headers={**api.admin_headers(), "X-Request-ID": request_id},
        json={"mode": " Disabled"},
    )

    (entry,) = api.audit_entries(request_id)
    assert entry["action"] == "org.billing_mode_default_set"
    assert entry["org_id"] == org_id
    assert entry["before"] == {"llm_billing_mode_default": None}
    assert entry["after"] == {"llm_billing_mode_default": " Disabled"}


@pytest.mark.parametrize("path", [_default_path, _list_path])
def test_an_unknown_org_is_a_404(api: Api, path: Callable[[object], str]) -> None:
    response = api.client.get(path(uuid.uuid4()), headers=api.admin_headers())

    assert response.status_code == 404
    assert response.json()["code"] == "ORG_NOT_FOUND"


def _org_of_three(api: Api) -> tuple[UUID, list[UUID]]:
    """An org with a derived byok, a derived platform_managed and an overridden workspace."""
    org = admin.create_org(api.context, "listed")
    ids = [
        admin.create_workspace(api.context, org.id, runtime="codex", model="gpt-5.5").id,
        admin.create_workspace(api.context, org.id, model="platform/claude-opus-4-7").id,
        admin.create_workspace(api.context, org.id, model="gpt-5.5", override="disabled").id,
    ]
    return org.id, sorted(ids)


def test_the_listing_carries_each_workspace_with_its_decision_in_id_order(api: Api) -> None:
    org_id, ids = _org_of_three(api)

    page = api.client.get(_list_path(org_id), headers=api.admin_headers()).json()

    assert [item["workspace"]["id"] for item in page["items"]] == [str(i) for i in ids]
    assert all(
        item["decision"]["workspace_id"] == item["workspace"]["id"] for item in page["items"]
    )
    assert page["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ({"mode": "byok"}, 1),
        ({"mode": "disabled"}, 1),
        ({"mode": "platform_managed"}, 1),
        ({"source": "derived_provider"}, 2),
        ({"source": "workspace_override"}, 1),
        ({"mode": "byok", "source": "workspace_override"}, 0),
    ],
)
def test_the_listing_filters_on_the_decided_mode_and_source(
    api: Api, query: dict[str, str], count: int
) -> None:
    org_id, _ = _org_of_three(api)

    page = api.client.get(_list_path(org_id), headers=api.admin_headers(), params=query).json()

    assert len(page["items"]) == count
    for item in page["items"]:
        for key, value in query.items():
            assert item["decision"][key] == value


def test_the_cursor_walks_every_workspace_once(api: Api) -> None:
    org_id, ids = _org_of_three(api)
    headers = api.admin_headers()
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2"} if cursor is None else {"limit": "2", "cursor": cursor}
        page = api.client.get(_list_path(org_id), headers=headers, params=params).json()
        seen += [item["workspace"]["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == [str(i) for i in ids]


@pytest.mark.parametrize(
    ("query", "field", "allowed"),
    [
        ({"mode": "BYOK"}, "mode", MODE_VALUES),
        ({"source": "override"}, "source", SOURCE_VALUES),
        ({"cursor": "page-2"}, "cursor", None),
        ({"limit": "0"}, "limit", None),
        ({"limit": "501"}, "limit", None),
    ],
)
def test_bad_listing_parameters_are_400s_naming_the_field(
    api: Api, query: dict[str, str], field: str, allowed: tuple[str, ...] | None
) -> None:
    org_id, _ = api.org_with_workspace()

    response = api.client.get(_list_path(org_id), headers=api.admin_headers(), params=query)

    assert response.status_code == 400
    assert response.json()["field"] == field
    assert response.json().get("allowed") == (None if allowed is None else list(allowed))
