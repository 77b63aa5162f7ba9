"""Tokens remembered through a store outage: only the decision GET may accept a token from
memory (every other route answers 503), and a token this process saw revoked is refused
everywhere, from memory too (401).

The outage is real, as in ``test_api_outage``: the PostgreSQL database is dropped under the
app, the SQLite file is replaced by a directory.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from tests.api.api_fixtures import bearer
from tests.api.outages import saas_context_on, take_down
from tests.store.db_fixtures import DatabaseFactory

from llmbilling.api.app import create_app
from llmbilling.api.auth import Principal, RecentPrincipals, Revoked
from llmbilling.service import admin
from llmbilling.service.tokens import Scope, create_token, revoke_token

DECISION = "/v1/workspaces/{workspace}/llm-billing-mode"

# Every route but the decision GET, with a body it would accept.
OTHER_ROUTES: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "set override": ("PUT", DECISION, {"mode": "byok"}),
    "clear override": ("DELETE", DECISION, None),
    "provision": ("POST", "/v1/workspaces/{workspace}/provision-env", None),
    "read org default": ("GET", "/v1/orgs/{org}/llm-billing-mode-default", None),
    "set org default": ("PUT", "/v1/orgs/{org}/llm-billing-mode-default", {"mode": "byok"}),
    "list workspaces": ("GET", "/v1/orgs/{org}/workspaces", None),
    "audit": ("GET", "/v1/audit", None),
    "start a what-if": ("POST", "/v1/whatif", {}),
    # Held in this process's memory, not the store: the route that answered without it.
    "read a what-if job": ("GET", "/v1/whatif/{job}", None),
}
EVERY_ROUTE = {"decision GET": ("GET", DECISION, None), **OTHER_ROUTES}


@dataclass(frozen=True)
class Outage:
    client: TestClient
    org_id: UUID
    workspace_id: UUID
    job_id: str
    tokens: dict[str, str]

    def call(self, route: tuple[str, str, dict[str, Any] | None], token: str) -> Any:
        method, path, body = route
        url = path.format(workspace=self.workspace_id, org=self.org_id, job=self.job_id)
        return self.client.request(method, url, headers=bearer(token), json=body)


def _finished_job(client: TestClient, headers: dict[str, str]) -> str:
    """A what-if job started and finished before the outage (a bound, not a timing check)."""
    location = client.post("/v1/whatif", headers=headers, json={}).headers["location"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = client.get(location, headers=headers).json()
        if job["state"] == "succeeded":
            return str(job["id"])
        time.sleep(0.02)
    raise AssertionError(f"{location} did not finish")


@pytest.fixture
def outage(new_database: DatabaseFactory) -> Iterator[Outage]:
    url = new_database()
    context = saas_context_on(url)
    org = admin.create_org(context, "before-the-outage")
    workspace = admin.create_workspace(context, org.id, model="gpt-5.5", runtime="codex")
    issued = {
        name: create_token(context, scope=Scope.ADMIN) for name in ("active", "unseen", "seen")
    }
    tokens = {name: token.token for name, token in issued.items()}
    with TestClient(create_app(context=context)) as client:
        decision = DECISION.format(workspace=workspace.id)
        for token in tokens.values():
            assert client.get(decision, headers=bearer(token)).status_code == 200
        job_id = _finished_job(client, bearer(tokens["active"]))
        # Revoked by another process: this one still remembers "unseen" as active...
        revoke_token(context, issued["unseen"].info.id)
        revoke_token(context, issued["seen"].info.id)
        # ...but has been told about "seen".
        assert client.get(decision, headers=bearer(tokens["seen"])).status_code == 401
        take_down(context, url)
        yield Outage(client, org.id, workspace.id, job_id, tokens)
    context.close()


@pytest.mark.parametrize("route", list(EVERY_ROUTE.values()), ids=list(EVERY_ROUTE))
def test_a_token_seen_revoked_is_refused_on_every_route_even_from_memory(
    outage: Outage, route: tuple[str, str, dict[str, Any] | None]
) -> None:
    response = outage.call(route, outage.tokens["seen"])

    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize("name", ["active", "unseen"])
def test_a_remembered_token_is_accepted_by_the_decision_get_which_reveals_nothing_stored(
    outage: Outage, name: str
) -> None:
    response = outage.call(EVERY_ROUTE["decision GET"], outage.tokens[name])

    assert response.status_code == 200
    assert response.json()["source"] == "constant_fallback"


@pytest.mark.parametrize("route", list(OTHER_ROUTES.values()), ids=list(OTHER_ROUTES))
@pytest.mark.parametrize("name", ["active", "unseen"])
def test_a_remembered_token_is_a_503_on_every_other_route(
    outage: Outage, name: str, route: tuple[str, str, dict[str, Any] | None]
) -> None:
    response = outage.call(route, outage.tokens[name])

    assert response.status_code == 503
    assert response.json()["code"] == "STORE_UNAVAILABLE"


ADMIN = Principal("token-a", Scope.ADMIN, None)


def test_a_revocation_outlasts_any_number_of_other_tokens_remembered() -> None:
    recent = RecentPrincipals(capacity=1)
    recent.remember("llmb_a", ADMIN)
    recent.remember("llmb_a", Revoked("token-a"))

    for other in range(10):
        recent.remember(f"llmb_{other}", Principal(f"token-{other}", Scope.ADMIN, None))

    assert recent.was_revoked("llmb_a")
    assert recent.recall("llmb_a") is None


def test_a_revoked_token_is_not_reinstated_by_a_later_active_answer() -> None:
    recent = RecentPrincipals()
    recent.remember("llmb_a", Revoked("token-a"))

    recent.remember("llmb_a", ADMIN)

    assert recent.recall("llmb_a") is None


def test_a_token_the_store_no_longer_knows_is_forgotten_but_not_marked_revoked() -> None:
    recent = RecentPrincipals()
    recent.remember("llmb_a", ADMIN)

    recent.remember("llmb_a", None)

    assert recent.recall("llmb_a") is None
    assert not recent.was_revoked("llmb_a")
