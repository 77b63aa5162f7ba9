"""``GET /v1/orgs``: the orgs a token may read, by (name, id), in keyset pages.

The session database is shared by the tests of one engine, so each test makes its own orgs
(names with a fresh tag) and looks for them in what it walks.
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from uuid import UUID

import pytest
from tests.api.api_fixtures import Api, bearer

from llmbilling.service import admin
from llmbilling.service.tokens import Scope

_NEXT = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')


def _orgs(api: Api, tag: str, names: list[str]) -> list[tuple[str, str]]:
    """New orgs named ``tag-name`` with a workspace each, as (name, id) pairs."""
    made = []
    for name in names:
        org = admin.create_org(api.context, f"{tag}-{name}")
        admin.create_workspace(api.context, org.id, model="gpt-5.5")
        made.append((org.name, str(org.id)))
    return made


def _walk(api: Api, headers: dict[str, str], limit: int) -> list[dict[str, Any]]:
    """Every item, following the `Link: rel=next` header page after page."""
    items: list[dict[str, Any]] = []
    url: str | None = f"/v1/orgs?limit={limit}"
    while url is not None:
        response = api.client.get(url, headers=headers)
        assert response.status_code == 200
        page = response.json()
        items.extend(page["items"])
        link = response.headers.get("link")
        assert (link is None) == (page["next_cursor"] is None)
        url = None if link is None else _NEXT.match(link)["url"]  # type: ignore[index]
    return items


def test_an_admin_token_lists_every_org_once_in_name_then_id_order(api: Api) -> None:
    tag = f"walk-{uuid.uuid4().hex[:8]}"
    mine = _orgs(api, tag, ["delta", "alpha", "charlie", "bravo", "alpha"])

    items = _walk(api, api.admin_headers(), limit=2)

    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids))
    tagged = [(item["name"], item["id"]) for item in items if item["name"].startswith(tag)]
    assert tagged == sorted(mine)


@pytest.mark.parametrize("limit", [1, 3, 7])
def test_walking_in_pages_of_any_size_gives_the_same_complete_sequence(
    api: Api, limit: int
) -> None:
    _orgs(api, f"size-{uuid.uuid4().hex[:8]}", ["a", "b", "c", "d"])
    headers = api.admin_headers()

    in_pages = [item["id"] for item in _walk(api, headers, limit=limit)]
    at_once = [item["id"] for item in _walk(api, headers, limit=500)]

    assert in_pages == at_once
    assert len(in_pages) == len(set(in_pages))


def test_an_org_token_lists_only_its_own_org(api: Api) -> None:
    tag = f"own-{uuid.uuid4().hex[:8]}"
    own = UUID(_orgs(api, tag, ["one", "two"])[0][1])

    for scope in (Scope.VIEWER, Scope.ORG_ADMIN, Scope.PROVISIONER):
        page = api.client.get("/v1/orgs", headers=bearer(api.token(scope, own))).json()

        assert [item["id"] for item in page["items"]] == [str(own)], scope
        assert page["next_cursor"] is None


def test_an_item_carries_the_name_the_stored_default_and_the_workspace_count(api: Api) -> None:
    tag = f"item-{uuid.uuid4().hex[:8]}"
    org = admin.create_org(api.context, tag, billing_mode_default=" BYOK")
    for _ in range(3):
        admin.create_workspace(api.context, org.id, model="gpt-5.5")

    page = api.client.get("/v1/orgs", headers=bearer(api.token(Scope.VIEWER, org.id))).json()

    assert page["items"] == [
        {
            "id": str(org.id),
            "name": tag,
            "llm_billing_mode_default": {"raw": " BYOK", "recognized": "byok"},
            "workspace_count": 3,
        }
    ]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"after": "not-a-cursor"}, "after"),
        ({"after": "1234"}, "after"),
    ],
)
def test_a_bad_limit_or_cursor_is_a_400_naming_the_field(
    api: Api, query: dict[str, str], field: str
) -> None:
    response = api.client.get("/v1/orgs", params=query, headers=api.admin_headers())

    assert response.status_code == 400
    assert response.json()["field"] == field


def test_a_cursor_no_visible_org_has_is_a_404(api: Api) -> None:
    (_, foreign), (_, own) = _orgs(api, f"cursor-{uuid.uuid4().hex[:8]}", ["a", "b"])
    tenant = bearer(api.token(Scope.VIEWER, UUID(own)))

    unknown = api.client.get(
        "/v1/orgs", params={"after": str(uuid.uuid4())}, headers=api.admin_headers()
    )
    not_its_own = api.client.get("/v1/orgs", params={"after": foreign}, headers=tenant)

    assert unknown.status_code == not_its_own.status_code == 404
    assert unknown.json()["code"] == not_its_own.json()["code"] == "ORG_NOT_FOUND"


def test_the_listing_needs_a_token(api: Api) -> None:
    assert api.client.get("/v1/orgs").status_code == 401
