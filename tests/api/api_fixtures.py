"""The app under test, a client, and helpers to make orgs, workspaces and tokens."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.store.db_fixtures import ContextFactory

from llmbilling.api.app import create_app
from llmbilling.service import admin
from llmbilling.service.context import ServiceContext
from llmbilling.service.tokens import Scope, create_token
from llmbilling.store.tables import audit_log


class Answer(Protocol):
    """What the tests read of a response (the test client's class depends on its version)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


@dataclass(frozen=True)
class Api:
    """The app over one service context, and a client that raises nothing on 5xx."""

    app: FastAPI
    context: ServiceContext
    client: TestClient

    def token(self, scope: Scope | str, org_id: UUID | None = None) -> str:
        return create_token(self.context, scope=scope, org_id=org_id).token

    def admin_headers(self) -> dict[str, str]:
        return bearer(self.token(Scope.ADMIN))

    def org_with_workspace(
        self, *, model: str = "platform/claude-opus-4-7", runtime: str = "claude-code"
    ) -> tuple[UUID, UUID]:
        org = admin.create_org(self.context, f"org-{uuid.uuid4().hex[:6]}")
        workspace = admin.create_workspace(self.context, org.id, runtime=runtime, model=model)
        return org.id, workspace.id

    def audit_entries(self, request_id: str) -> list[dict[str, Any]]:
        with self.context.store.read_engine.connect() as connection:
            rows = connection.execute(
                select(audit_log)
                .where(audit_log.c.request_id == request_id)
                .order_by(audit_log.c.id)
            ).mappings()
            return [dict(row) for row in rows]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api(make_context: ContextFactory) -> Iterator[Api]:
    context = make_context()
    app = create_app(context=context)
    with TestClient(app) as client:
        yield Api(app, context, client)
