"""``POST /v1/whatif`` bounds a proposal before validating it (docs/API.md "Document bounds"):
over MAX_DOCUMENT_DEPTH levels or MAX_DOCUMENT_NODES nodes is a 422 ``PROPOSAL_INVALID``
naming the field; the 64 KiB body limit bounds its bytes; an error quotes values cut short."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.api.api_fixtures import Api
from tests.core.hostile_documents import BILLION_LAUGHS, nested, wide

from llmbilling.core.documents import MAX_DOCUMENT_DEPTH, MAX_DOCUMENT_NODES

MESSAGE_LIMIT = 1_000


def proposed(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    response = api.client.post("/v1/whatif", headers=api.admin_headers(), json=body)
    assert response.status_code == 422, response.text
    problem: dict[str, Any] = response.json()
    return problem


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        pytest.param(
            {"policy": {"rungs": nested(MAX_DOCUMENT_DEPTH)}}, "policy.rungs", "levels deep",
            id="policy-too-deep",
        ),
        pytest.param(
            {"registry": {"runtimes": nested(MAX_DOCUMENT_DEPTH)}}, "registry.runtimes",
            "levels deep", id="registry-too-deep",
        ),
        pytest.param(
            {"policy": {"rungs": wide(MAX_DOCUMENT_NODES)}}, "policy.rungs", "nodes",
            id="policy-too-many-nodes",
        ),
        pytest.param(
            {"registry": {"providers": wide(MAX_DOCUMENT_NODES)}}, "registry.providers",
            "nodes", id="registry-too-many-nodes",
        ),
    ],
)  # fmt: skip
def test_a_proposal_outside_the_bounds_is_a_422_naming_the_field(
    api: Api, body: dict[str, Any], field: str, problem: str
) -> None:
    refused = proposed(api, body)
    assert refused["code"] == "PROPOSAL_INVALID"
    assert refused["field"].startswith(field)
    assert f"refused: more than {MAX_DOCUMENT_NODES} nodes" in refused["message"] or (
        f"nested more than {MAX_DOCUMENT_DEPTH} levels deep" in refused["message"]
    )
    assert problem in refused["message"]


def test_a_proposal_nested_past_the_json_parser_is_a_client_error(api: Api) -> None:
    body = '{"policy": {"rungs": ' + "[" * 5_000 + "]" * 5_000 + "}}"
    response = api.client.post(
        "/v1/whatif",
        headers={**api.admin_headers(), "Content-Type": "application/json"},
        content=body,
    )
    assert response.status_code == 400, response.text


def test_yaml_text_in_a_json_body_is_never_parsed(api: Api) -> None:
    response = api.client.post(
        "/v1/whatif", headers=api.admin_headers(), json={"policy": BILLION_LAUGHS}
    )
    assert response.status_code == 400
    assert response.json()["field"] == "policy"
    assert "lol" not in response.json()["message"]


def test_a_proposal_error_quotes_a_long_value_cut_short(api: Api) -> None:
    long_id = "x" * 40_000
    registry = {
        "schema_version": 2,
        "providers": [{"id": "platform", "name": "P", "platform": True, "auth_env": ["A"]}],
        "runtimes": [
            {
                "id": "rt",
                "api": "openai",
                "proxy_env": {"base_url": "B", "token": "T"},
                "providers": [{"provider": long_id}],
            }
        ],
    }
    assert len(json.dumps({"registry": registry})) < 64 * 1024
    refused = proposed(api, {"registry": registry})
    assert refused["field"] == "registry.runtimes[0].providers[0].provider"
    assert "unknown provider" in refused["message"]
    assert len(refused["message"]) < MESSAGE_LIMIT
