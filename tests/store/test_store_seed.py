"""The demo fleet: deterministic per seed, and as varied as a real one."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from tests.store.db_fixtures import DatabaseFactory

from llmbilling.config.registry import built_in_registry
from llmbilling.store import migrate
from llmbilling.store.crypto import KeyRing
from llmbilling.store.engine import open_store
from llmbilling.store.seed import seed_fleet
from llmbilling.store.tables import organizations, workspace_secrets, workspaces

FLEET = 2_000


@pytest.fixture
def fleet(new_database: DatabaseFactory) -> dict[str, list[tuple[object, ...]]]:
    store = open_store(new_database())
    try:
        migrate.upgrade(store)
        with store.engine.begin() as connection:
            seed_fleet(
                connection,
                workspace_count=FLEET,
                seed=42,
                registry=built_in_registry(),
                key_ring=KeyRing.parse(KeyRing.new_key_text(1)),
                stamp=datetime.now(UTC),
            )
        with store.engine.connect() as connection:
            return {
                "orgs": [
                    tuple(r)
                    for r in connection.execute(
                        select(
                            organizations.c.id, organizations.c.llm_billing_mode_default
                        ).order_by(organizations.c.id)
                    )
                ],
                "workspaces": [
                    tuple(r)
                    for r in connection.execute(
                        select(
                            workspaces.c.id,
                            workspaces.c.org_id,
                            workspaces.c.runtime,
                            workspaces.c.model,
                            workspaces.c.llm_billing_mode,
                        ).order_by(workspaces.c.id)
                    )
                ],
                "secret_names": [
                    tuple(r)
                    for r in connection.execute(
                        select(workspace_secrets.c.workspace_id, workspace_secrets.c.key).order_by(
                            workspace_secrets.c.workspace_id, workspace_secrets.c.key
                        )
                    )
                ],
            }
    finally:
        store.close()


def test_the_fleet_has_every_kind_of_org_default(
    fleet: dict[str, list[tuple[object, ...]]],
) -> None:
    defaults = {raw for _, raw in fleet["orgs"]}
    assert {None, "platform_managed", "byok", "disabled"} <= defaults
    assert {"  BYOK ", "Platform_Managed", "byokk", ""} <= defaults


def test_the_fleet_covers_every_runtime_and_a_mix_of_models(
    fleet: dict[str, list[tuple[object, ...]]],
) -> None:
    rows = fleet["workspaces"]
    assert {r[2] for r in rows} == set(built_in_registry().runtimes)
    models = Counter(r[3] for r in rows)
    assert None in models
    assert "totally-made-up" in models
    assert any(str(m).startswith("platform") for m in models)
    overrides = Counter(r[4] for r in rows)
    assert set(overrides) == {None, "byok", "platform_managed", "disabled"}
    assert len(fleet["secret_names"]) > FLEET / 10


def test_the_same_seed_gives_the_same_fleet(new_database: DatabaseFactory) -> None:
    def draw() -> list[tuple[object, ...]]:
        store = open_store(new_database())
        try:
            migrate.upgrade(store)
            with store.engine.begin() as connection:
                seed_fleet(
                    connection,
                    workspace_count=300,
                    seed=5,
                    registry=built_in_registry(),
                    key_ring=KeyRing.parse(KeyRing.new_key_text(1)),
                    stamp=datetime.now(UTC),
                )
                return [
                    tuple(r)
                    for r in connection.execute(
                        select(workspaces.c.id, workspaces.c.model).order_by(workspaces.c.id)
                    )
                ]
        finally:
            store.close()

    assert draw() == draw()
