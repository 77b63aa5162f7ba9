"""A write answers from the state its own transaction produced: with every fresh read
connection failing (the state a replica or a pool under load can be in right after a commit),
each write still commits and answers what it wrote, and the answer equals what a read returns
once reads work again."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Connection
from tests.api.api_fixtures import Api, bearer
from tests.store.db_fixtures import stored_workspace

from llmbilling.errors import StoreUnavailableError
from llmbilling.service import admin
from llmbilling.service.context import ServiceContext
from llmbilling.service.resolve import read_decision
from llmbilling.store.engine import Store


@contextmanager
def _unreadable(self: Store) -> Iterator[Connection]:
    raise StoreUnavailableError("fresh read connections fail in this test")
    yield  # pragma: no cover - a generator for contextmanager


@pytest.fixture
def reads_fail(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with monkeypatch.context() as patched:
        patched.setattr(Store, "connection", _unreadable)
        yield


def test_an_override_write_answers_the_decision_it_committed(
    context: ServiceContext, reads_fail: None
) -> None:
    _, workspace_id = stored_workspace(context)

    written = admin.set_override(context, workspace_id, "disabled")
    version = written.version

    assert written.decision.mode.value == "disabled"
    assert version is not None
    assert version.workspace_version == 2


def test_the_override_answer_is_what_a_later_read_returns(context: ServiceContext) -> None:
    _, workspace_id = stored_workspace(context, org_default="byok")

    written = admin.set_override(context, workspace_id, None)

    assert written == read_decision(context, workspace_id)


@pytest.mark.parametrize("raw", ["byok", None], ids=["set", "clear"])
def test_an_org_default_write_answers_the_org_it_committed(
    context: ServiceContext, reads_fail: None, raw: str | None
) -> None:
    org_id, _ = stored_workspace(context, org_default="platform_managed")

    org = admin.set_org_default(context, org_id, raw)

    assert (org.billing_mode_default_raw, org.row_version, org.workspace_count) == (raw, 2, 1)


def test_creating_an_org_and_a_workspace_answers_what_was_inserted(
    context: ServiceContext, reads_fail: None
) -> None:
    org = admin.create_org(context, "acme", billing_mode_default="byok")
    workspace = admin.create_workspace(context, org.id, model="platform/claude-opus-4-7")

    assert (org.name, org.billing_mode_default_raw, org.workspace_count) == ("acme", "byok", 0)
    assert (workspace.org_id, workspace.model) == (org.id, "platform/claude-opus-4-7")


def test_the_override_put_answers_200_with_its_etag_while_fresh_reads_fail(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, workspace_id = api.org_with_workspace()
    headers = api.admin_headers()
    path = f"/v1/workspaces/{workspace_id}/llm-billing-mode"
    seen = api.client.get(path, headers=headers).headers["ETag"]

    with monkeypatch.context() as patched:
        patched.setattr(Store, "connection", _unreadable)
        answer = api.client.put(path, json={"mode": "byok"}, headers={**headers, "If-Match": seen})

    assert answer.status_code == 200
    assert answer.json()["mode"] == "byok"
    after = api.client.get(path, headers=bearer(api.token("admin")))
    assert (after.json(), after.headers["ETag"]) == (answer.json(), answer.headers["ETag"])
