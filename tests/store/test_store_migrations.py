"""Migrations run up and down cleanly on both engines and build exactly the declared schema."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, insert, inspect, select, update
from sqlalchemy.exc import DBAPIError
from tests.store.db_fixtures import DatabaseFactory

from llmbilling.store import migrate
from llmbilling.store.engine import open_store
from llmbilling.store.tables import api_tokens, audit_log, metadata, organizations, workspaces

INITIAL_REVISION = "0001_initial"

TABLES = {
    "organizations",
    "workspaces",
    "org_secrets",
    "workspace_secrets",
    "audit_log",
    "provisions",
    "api_tokens",
}


def test_upgrade_then_downgrade_then_upgrade_again_is_clean(new_database: DatabaseFactory) -> None:
    store = open_store(new_database())
    try:
        migrate.upgrade(store)
        assert migrate.current_revision(store) == migrate.head_revision()
        assert set(inspect(store.engine).get_table_names()) >= TABLES

        migrate.downgrade(store, "base")
        assert migrate.current_revision(store) is None
        assert not TABLES & set(inspect(store.engine).get_table_names())

        migrate.upgrade(store)
        assert migrate.current_revision(store) == migrate.head_revision()
    finally:
        store.close()


def test_migrated_schema_matches_the_declared_tables(engine_url: str) -> None:
    store = open_store(engine_url)
    try:
        with store.engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            assert compare_metadata(context, metadata) == []
    finally:
        store.close()


def _org_and_workspace_values() -> tuple[dict[str, object], dict[str, object]]:
    now = datetime.now(UTC)
    org_id = uuid.uuid4()
    org = {"id": org_id, "name": "o", "created_at": now, "updated_at": now}
    workspace = {"id": uuid.uuid4(), "org_id": org_id, "created_at": now, "updated_at": now}
    return org, workspace


@pytest.mark.parametrize("garbled", ["byokk", "BYOK", "", " byok"])
def test_override_column_accepts_only_the_three_modes(engine_url: str, garbled: str) -> None:
    org, workspace = _org_and_workspace_values()
    store = open_store(engine_url)
    try:
        with store.engine.begin() as connection:
            connection.execute(insert(organizations).values(org))
        with pytest.raises(DBAPIError), store.engine.begin() as connection:
            connection.execute(
                insert(workspaces).values({**workspace, "llm_billing_mode": garbled})
            )
    finally:
        store.close()


def test_workspace_runtime_defaults_to_claude_code(engine_url: str) -> None:
    org, workspace = _org_and_workspace_values()
    store = open_store(engine_url)
    try:
        with store.engine.begin() as connection:
            connection.execute(insert(organizations).values(org))
            connection.execute(insert(workspaces).values(workspace))
            runtime = connection.execute(
                select(workspaces.c.runtime).where(workspaces.c.id == workspace["id"])
            ).scalar_one()
        assert runtime == "claude-code"
    finally:
        store.close()


@pytest.mark.parametrize("change", ["update", "delete"])
def test_audit_log_rejects_updates_and_deletes(engine_url: str, change: str) -> None:
    store = open_store(engine_url)
    request_id = str(uuid.uuid4())
    try:
        with store.engine.begin() as connection:
            connection.execute(
                insert(audit_log).values(
                    occurred_at=datetime.now(UTC),
                    actor="test",
                    action="test.appended",
                    request_id=request_id,
                )
            )
        rows = audit_log.c.request_id == request_id
        statement = (
            update(audit_log).where(rows).values(actor="tampered")
            if change == "update"
            else delete(audit_log).where(rows)
        )
        with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as connection:
            connection.execute(statement)
    finally:
        store.close()


def test_upgrading_from_the_initial_revision_keeps_rows_and_starts_them_at_version_one(
    new_database: DatabaseFactory,
) -> None:
    org, workspace = _org_and_workspace_values()
    store = open_store(new_database())
    try:
        migrate.upgrade(store, INITIAL_REVISION)
        with store.engine.begin() as connection:
            connection.execute(insert(organizations).values(org))
            connection.execute(insert(workspaces).values(workspace))
        migrate.upgrade(store)
        with store.engine.connect() as connection:
            versions = {
                connection.execute(select(organizations.c.row_version)).scalar_one(),
                connection.execute(select(workspaces.c.row_version)).scalar_one(),
            }
        assert versions == {1}

        migrate.downgrade(store, INITIAL_REVISION)
        assert migrate.current_revision(store) == INITIAL_REVISION
        assert "api_tokens" not in inspect(store.engine).get_table_names()
        columns = {column["name"] for column in inspect(store.engine).get_columns("workspaces")}
        assert "row_version" not in columns
    finally:
        store.close()


@pytest.mark.parametrize(
    ("scope", "has_org"),
    [("admin", True), ("org_admin", False), ("viewer", False), ("owner", False)],
)
def test_a_token_row_needs_a_known_scope_and_an_org_exactly_when_not_admin(
    engine_url: str, scope: str, has_org: bool
) -> None:
    org, _ = _org_and_workspace_values()
    store = open_store(engine_url)
    try:
        with store.engine.begin() as connection:
            connection.execute(insert(organizations).values(org))
        with pytest.raises(DBAPIError), store.engine.begin() as connection:
            connection.execute(
                insert(api_tokens).values(
                    id=uuid.uuid4(),
                    scope=scope,
                    org_id=org["id"] if has_org else None,
                    token_hash=uuid.uuid4().hex,
                    created_at=datetime.now(UTC),
                )
            )
    finally:
        store.close()
