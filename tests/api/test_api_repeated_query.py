"""A query parameter given twice is refused (400 naming it): no route takes a list in the
query, so which value would count is ambiguous (found by schemathesis' negative phase:
``?limit=8.2e-154&…&limit=10.0`` was answered from the last value)."""

from __future__ import annotations

import pytest
from tests.api.api_fixtures import Api


@pytest.mark.parametrize(
    "query",
    ["/v1/orgs?limit=2&limit=3", "/v1/audit?limit=5&limit=5", "/v1/plans?limit=1&limit=x"],
)
def test_a_query_parameter_given_twice_is_refused_naming_it(api: Api, query: str) -> None:
    response = api.client.get(query, headers=api.admin_headers())

    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_INPUT"
    assert response.json()["field"] == "limit"


def test_distinct_query_parameters_are_taken(api: Api) -> None:
    response = api.client.get("/v1/audit?limit=5&action=org.created", headers=api.admin_headers())

    assert response.status_code == 200
