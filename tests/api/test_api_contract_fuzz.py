"""Schemathesis against the served OpenAPI document, in-process on SQLite, as admin.

Bounded (25 examples per operation): every response must be declared, match its schema and
content type, never be a 5xx, and (among schemathesis' other default checks) a request
without the token must be refused. Half the examples of an operation that takes a workspace or
an org use one that exists, so the success paths are fuzzed, not just the 404s.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.config import SchemathesisConfig
from schemathesis.core.result import Ok
from schemathesis.openapi import from_asgi
from schemathesis.specs.openapi.schemas import OpenApiSchema

from llmbilling.api.app import create_app
from llmbilling.config.settings import Settings
from llmbilling.core.policy import PolicyDocument
from llmbilling.core.registry import RegistryDocument
from llmbilling.service import admin, plans
from llmbilling.service.demo import seed_demo_fleet
from llmbilling.service.tokens import Scope, create_token
from llmbilling.store.crypto import KeyRing

MAX_EXAMPLES = 25
# A schema-valid request may still meet state it cannot change: a stale If-Match (412), a
# workspace that cannot be provisioned as stored (409, 422), an If-None-Match naming the
# current tag (304). Those are answers, not rejections.
ACCEPTED_STATUSES = ["2xx", "304", "401", "403", "404", "409", "412", "422"]
CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED_STATUSES}}}
)
OPERATIONS = (
    ("GET", "/v1/workspaces/{workspace_id}/llm-billing-mode"),
    ("PUT", "/v1/workspaces/{workspace_id}/llm-billing-mode"),
    ("DELETE", "/v1/workspaces/{workspace_id}/llm-billing-mode"),
    ("POST", "/v1/workspaces/{workspace_id}/provision-env"),
    ("GET", "/v1/orgs"),
    ("GET", "/v1/orgs/{org_id}/llm-billing-mode-default"),
    ("PUT", "/v1/orgs/{org_id}/llm-billing-mode-default"),
    ("GET", "/v1/orgs/{org_id}/workspaces"),
    ("GET", "/v1/audit"),
    ("GET", "/v1/whatif"),
    ("POST", "/v1/whatif"),
    ("GET", "/v1/whatif/{job_id}"),
    ("POST", "/v1/plans/preview"),
    ("POST", "/v1/plans"),
    ("GET", "/v1/plans"),
    ("GET", "/v1/plans/{plan_id}"),
    ("POST", "/v1/plans/{plan_id}/approve"),
    ("POST", "/v1/plans/{plan_id}/apply"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/v1/deployment"),
)


def move_expiry_to_the_future(case: Case[Any]) -> None:
    # A schema cannot say "later than now", which an override's expires_at must be (else a
    # 400 naming it, tested in test_api_write_reasons.py): a fuzzed one is kept in the future.
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("expires_at"), str):
        body["expires_at"] = "2999-01-01T00:00:00Z"
    # A planned override's too; and only an override that sets a mode may expire (the
    # schema's if/then is not followed by the generator).
    change = body.get("change") if isinstance(body, dict) else None
    if isinstance(change, dict) and isinstance(change.get("expires_at"), str):
        change["expires_at"] = "2999-01-01T00:00:00Z" if change.get("mode") else None


@dataclass(frozen=True)
class FuzzTarget:
    schema: OpenApiSchema
    headers: dict[str, str]
    existing: dict[str, str]


def seeded_app(folder: Path) -> tuple[FastAPI, str]:
    """The app over a new SQLite store in ``folder`` holding the demo fleet (40 workspaces),
    and an admin token. Its context is the caller's to close (``app.state.context``)."""
    app = create_app(
        Settings(
            database_url=f"sqlite:///{folder / 'store.sqlite3'}",
            secret_keys=KeyRing.new_key_text(1),
            MOLECULE_LLM_BASE_URL="https://proxy.example/v1",
            MOLECULE_LLM_USAGE_TOKEN="usage-token",
            # Every fuzzed what-if start must reach the route's own checks, not the per-org
            # quota and start rate (tested on their own in test_api_whatif.py).
            whatif_active_per_org=1000,
            whatif_start_burst=1000,
            whatif_starts_per_minute=60000,
        )
    )
    seed_demo_fleet(app.state.context, workspace_count=40, seed=7)
    return app, create_token(app.state.context, scope=Scope.ADMIN).token


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    app, token = seeded_app(tmp_path_factory.mktemp("fuzz"))
    context = app.state.context
    workspace = admin.list_workspaces(context, limit=1)[0].workspace
    plan = plans.propose_plan(context, plans.org_default_change(workspace.org_id, "byok"))
    yield FuzzTarget(
        schema=from_asgi("/openapi.json", app, config=CONFIG),
        headers={"Authorization": f"Bearer {token}"},
        existing={
            "workspace_id": str(workspace.id),
            "org_id": str(workspace.org_id),
            "plan_id": str(plan.id),
        },
    )
    context.close()


def test_the_fuzzed_operations_are_every_operation_served(target: FuzzTarget) -> None:
    served = set()
    for result in target.schema.get_all_operations():
        assert isinstance(result, Ok), result
        served.add((result.ok().method.upper(), result.ok().path))
    assert served == set(OPERATIONS)


def test_the_proposed_documents_schemas_are_the_validating_models(target: FuzzTarget) -> None:
    components = target.schema.raw_schema["components"]["schemas"]
    body = target.schema.raw_schema["paths"]["/v1/whatif"]["post"]["requestBody"]
    for name, model in (("policy", PolicyDocument), ("registry", RegistryDocument)):
        generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
        definitions = generated.pop("$defs", {})
        assert components[model.__name__] == generated
        assert all(components[inner] == schema for inner, schema in definitions.items())
        for media in body["content"].values():
            reference = {"$ref": f"#/components/schemas/{model.__name__}"}
            assert reference in media["schema"]["properties"][name]["anyOf"]


def test_no_parameter_takes_a_null(target: FuzzTarget) -> None:
    for path_item in target.schema.raw_schema["paths"].values():
        for operation in path_item.values():
            for parameter in operation.get("parameters", []):
                assert {"type": "null"} not in parameter["schema"].get("anyOf", []), parameter


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_operation_keeps_its_contract(target: FuzzTarget, method: str, path: str) -> None:
    operation = target.schema[path][method]
    existing = {
        name: UUID(value) for name, value in target.existing.items() if f"{{{name}}}" in path
    }
    cases = operation.as_strategy()
    if existing:
        cases = st.one_of(cases, operation.as_strategy(path_parameters=existing))

    @given(case=cases)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    def keeps_contract(case: Case[Any]) -> None:
        move_expiry_to_the_future(case)
        case.call_and_validate(headers=target.headers)

    keeps_contract()
