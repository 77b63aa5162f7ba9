"""``If-None-Match`` on the decision and org-default GETs (item 10): 304 when a listed tag is
current, compared weakly (RFC 9110 §13.1.2); ``*`` matches any current representation."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

import pytest
from tests.api.api_fixtures import Api

from llmbilling.service import admin


def _decision_path(_org_id: UUID, workspace_id: UUID) -> str:
    return f"/v1/workspaces/{workspace_id}/llm-billing-mode"


def _org_default_path(org_id: UUID, _workspace_id: UUID) -> str:
    return f"/v1/orgs/{org_id}/llm-billing-mode-default"


PATHS = pytest.mark.parametrize(
    "path_of", [_decision_path, _org_default_path], ids=["decision", "org-default"]
)


@PATHS
@pytest.mark.parametrize(
    "if_none_match",
    ["{tag}", "W/{tag}", '"other", {tag}', "*"],
    ids=["current", "weak-current", "in-a-list", "star"],
)
def test_a_current_tag_is_answered_304_without_a_body(
    api: Api, path_of: Callable[[UUID, UUID], str], if_none_match: str
) -> None:
    path = path_of(*api.org_with_workspace())
    headers = api.admin_headers()
    tag = api.client.get(path, headers=headers).headers["etag"]

    response = api.client.get(
        path, headers={**headers, "If-None-Match": if_none_match.format(tag=tag)}
    )

    assert (response.status_code, response.content) == (304, b"")
    assert response.headers["etag"] == tag


@PATHS
def test_a_stale_tag_is_answered_200_with_the_current_one(
    api: Api, path_of: Callable[[UUID, UUID], str]
) -> None:
    org_id, workspace_id = api.org_with_workspace()
    path = path_of(org_id, workspace_id)
    headers = api.admin_headers()
    stale = api.client.get(path, headers=headers).headers["etag"]
    admin.set_org_default(api.context, org_id, "disabled")

    response = api.client.get(path, headers={**headers, "If-None-Match": stale})

    assert response.status_code == 200
    assert response.headers["etag"] != stale
