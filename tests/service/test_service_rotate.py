"""Key rotation: everything ends under the newest key; interrupted runs resume."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import func, select
from tests.store.db_fixtures import KEY_RING_TEXT, SAAS_PROXY, DatabaseFactory, stored_workspace

from llmbilling.config.registry import built_in_registry
from llmbilling.service import secrets
from llmbilling.service.context import DeploymentInputs, ServiceContext
from llmbilling.service.provision import provision_workspace
from llmbilling.store import migrate
from llmbilling.store.crypto import KeyRing
from llmbilling.store.engine import open_store
from llmbilling.store.tables import org_secrets, workspace_secrets

ContextFactory = Callable[..., ServiceContext]


@pytest.fixture
def make_context(new_database: DatabaseFactory) -> Iterator[ContextFactory]:
    """Contexts on one database of this test's own: rotation touches every secret stored."""
    url = new_database()
    opened: list[ServiceContext] = []

    def make(*, key_ring_text: str = KEY_RING_TEXT) -> ServiceContext:
        store = open_store(url)
        migrate.upgrade(store)
        context = ServiceContext(
            store,
            DeploymentInputs(proxy=SAAS_PROXY, org_default=None),
            built_in_registry(),
            key_ring_loader=lambda: KeyRing.parse(key_ring_text),
        )
        opened.append(context)
        return context

    yield make
    for context in opened:
        context.close()


def test_rotation_reseals_everything_under_the_newest_key_and_values_survive(
    make_context: ContextFactory,
) -> None:
    old = make_context()
    _, workspace_id = stored_workspace(
        old,
        org_default="byok",
        org_secrets={"ANTHROPIC_API_KEY": "sk-org"},
        workspace_secrets={"GITHUB_TOKEN": "gh", "OPENAI_API_KEY": "sk-ws"},
    )
    rotated_ring = f"{KEY_RING_TEXT},{KeyRing.new_key_text(2)}"
    new = make_context(key_ring_text=rotated_ring)

    secrets.rotate_secrets(new, batch_size=1)

    assert secrets.pending_rotation(new) == 0
    assert {i.key_version for i in secrets.list_secrets(new, "workspace", workspace_id)} == {2}
    env = provision_workspace(new, workspace_id).provision.env
    assert (env["ANTHROPIC_API_KEY"], env["GITHUB_TOKEN"]) == ("sk-org", "gh")


def test_an_interrupted_rotation_resumes_where_it_stopped(make_context: ContextFactory) -> None:
    old = make_context()
    for index in range(3):
        stored_workspace(old, workspace_secrets={f"TOKEN_{index}": "t", "OTHER": "o"})
    new = make_context(key_ring_text=f"{KEY_RING_TEXT},{KeyRing.new_key_text(3)}")
    before = secrets.pending_rotation(new)

    first = secrets.rotate_secrets(new, batch_size=2, max_batches=1)  # "interrupted"
    assert first.total == 2
    assert secrets.pending_rotation(new) == before - 2

    secrets.rotate_secrets(new, batch_size=2)
    assert secrets.pending_rotation(new) == 0
    with new.store.read_engine.connect() as connection:
        for table in (org_secrets, workspace_secrets):
            versions = connection.execute(
                select(func.count()).select_from(table).where(table.c.key_version != 3)
            ).scalar_one()
            assert versions == 0
