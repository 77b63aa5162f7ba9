"""Property: the what-if the database groups and counts gives the report, sample for sample, of
deciding every workspace one by one through the read path and tallying in id order.

Random fleets on both engines: orgs with clean, cased, padded and garbled defaults and secrets of
both scopes; workspaces with every override (garbled too), expiries passed and not, models in the
column, blank, or only in sealed MOLECULE_MODEL/MODEL secrets of either scope (some sealed under
another key, so unreadable), credentials and other secrets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select
from tests.store.db_fixtures import KEY_RING_TEXT, SAAS_PROXY, SELF_HOST, DatabaseFactory

from llmbilling import ProxySettings, compile_policy
from llmbilling.config.registry import built_in_registry
from llmbilling.core.policy import CONTRACT_POLICY, CompiledPolicy
from llmbilling.core.whatif import Configuration, WhatIfTally, compare
from llmbilling.service.context import DeploymentInputs, ServiceContext
from llmbilling.service.resolve import read_path_inputs
from llmbilling.service.whatif import proposed_configuration, run_whatif
from llmbilling.store import migrate
from llmbilling.store.crypto import KeyRing, SecretLocation
from llmbilling.store.engine import open_store
from llmbilling.store.tables import org_secrets, organizations, workspace_secrets, workspaces
from llmbilling.store.workspace_read import WorkspaceState, read_workspace_state

REGISTRY = built_in_registry()
RUNTIMES = sorted(REGISTRY.runtimes)[:3]
OTHER_KEY_RING = KeyRing.parse(KeyRing.new_key_text(1))
NOW = datetime.now(UTC)
DROPS_THE_ORG_RUNG = compile_policy(
    {"rungs": ["workspace_override", "derived_provider", "deployment_default"]}, "p2b.yaml"
)
OWN_KEY_WINS = compile_policy(
    {
        "rungs": ["workspace_override", "org_default", "derived_provider", "deployment_default"],
        "options": {"own_key_wins_over_org_default": True},
    },
    "own-key.yaml",
)

MODES = st.sampled_from(
    [None, "byok", "platform_managed", "disabled", "", " BYOK ", "Platform_Managed", "byokk"]
)
MODELS = st.sampled_from(
    [None, "", " \t", "gpt-5.5", "claude-sonnet-4-6", "anthropic/claude-sonnet-4-6",
     "platform/claude-opus-4-7", "totally-made-up", "gemini-2.5-pro"]
)  # fmt: skip
SECRET_NAMES = st.frozensets(
    st.sampled_from(
        ["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN",
         "MINIMAX_API_KEY", "GITHUB_TOKEN", "MODEL", "MOLECULE_MODEL"]
    ),
    max_size=3,
)  # fmt: skip
EXPIRIES = st.sampled_from([None, NOW - timedelta(days=2), NOW + timedelta(days=2)])


@dataclass(frozen=True)
class Org:
    default: str | None
    secrets: frozenset[str]


@dataclass(frozen=True)
class Workspace:
    org: int
    override: str | None
    expires_at: datetime | None
    runtime: str
    model: str | None
    secrets: frozenset[str]
    sealed_elsewhere: bool
    """Its model secrets sealed under a key the deployment does not hold."""


@st.composite
def fleets(draw: st.DrawFn) -> tuple[list[Org], list[Workspace]]:
    orgs = draw(st.lists(st.builds(Org, MODES, SECRET_NAMES), min_size=1, max_size=4))
    workspace = st.builds(
        Workspace,
        st.integers(0, len(orgs) - 1),
        MODES,
        EXPIRIES,
        st.sampled_from(RUNTIMES),
        MODELS,
        SECRET_NAMES,
        st.booleans(),
    )
    return orgs, draw(st.lists(workspace, max_size=25))


@pytest.fixture
def fleet_url(new_database: DatabaseFactory) -> str:
    url = new_database()
    store = open_store(url)
    try:
        migrate.upgrade(store)
    finally:
        store.close()
    return url


def _context(url: str, proxy: ProxySettings) -> ServiceContext:
    return ServiceContext(
        open_store(url),
        DeploymentInputs(proxy=proxy, org_default="platform_managed"),
        REGISTRY,
        key_ring_loader=lambda: KeyRing.parse(KEY_RING_TEXT),
    )


def _secret_value(name: str) -> str:
    return "gpt-5.5" if name in ("MODEL", "MOLECULE_MODEL") else f"value-of-{name.lower()}"


def store_fleet(context: ServiceContext, orgs: list[Org], fleet: list[Workspace]) -> list[UUID]:
    """Replace the stored fleet by ``orgs`` and ``fleet``; the org ids."""
    key_ring = context.key_ring
    with context.store.transaction() as connection:
        for table in (workspace_secrets, org_secrets, workspaces, organizations):
            connection.execute(delete(table))
        org_ids = [UUID(int=index + 1) for index in range(len(orgs))]
        for org_id, org in zip(org_ids, orgs, strict=True):
            connection.execute(
                insert(organizations).values(
                    id=org_id, name=str(org_id), llm_billing_mode_default=org.default,
                    created_at=NOW, updated_at=NOW,
                )
            )  # fmt: skip
            for name in sorted(org.secrets):
                sealed = key_ring.encrypt(_secret_value(name), SecretLocation("org", org_id, name))
                connection.execute(
                    insert(org_secrets).values(
                        org_id=org_id, key=name, ciphertext=sealed.ciphertext,
                        key_version=sealed.key_version, key_fingerprint=sealed.key_fingerprint,
                        updated_at=NOW,
                    )
                )  # fmt: skip
        # Ids out of insertion order, so "lowest id" is not "first written".
        for index, workspace in enumerate(fleet):
            workspace_id = UUID(int=(index * 7919 % 1000 + 1) << 64 | index)
            connection.execute(
                insert(workspaces).values(
                    id=workspace_id, org_id=org_ids[workspace.org], runtime=workspace.runtime,
                    model=workspace.model, llm_billing_mode=_stored_mode(workspace.override),
                    override_expires_at=workspace.expires_at, created_at=NOW, updated_at=NOW,
                )
            )  # fmt: skip
            for name in sorted(workspace.secrets):
                ring = key_ring
                if workspace.sealed_elsewhere and name in ("MODEL", "MOLECULE_MODEL"):
                    ring = OTHER_KEY_RING
                location = SecretLocation("workspace", workspace_id, name)
                sealed = ring.encrypt(_secret_value(name), location)
                connection.execute(
                    insert(workspace_secrets).values(
                        workspace_id=workspace_id, key=name, ciphertext=sealed.ciphertext,
                        key_version=sealed.key_version, key_fingerprint=sealed.key_fingerprint,
                        updated_at=NOW,
                    )
                )  # fmt: skip
    return org_ids


def _stored_mode(override: str | None) -> str | None:
    # The schema admits only modes (or NULL); garbled overrides are the org default's domain.
    return override if override in (None, "byok", "platform_managed", "disabled") else None


def one_by_one(
    context: ServiceContext, proposed: Configuration, org_id: UUID | None, samples: int
) -> dict[str, object]:
    """The reference: every workspace read through the read path, decided, tallied in id
    order."""
    current = Configuration(context.policy, context.registry)
    tally = WhatIfTally(current, proposed, samples, format_id=str)
    for state in _states(context, org_id):
        change = compare(read_path_inputs(context, state), current, proposed).change
        tally.add(state.org_id, state.workspace_id, change)
    return tally.report().to_document()


def _states(context: ServiceContext, org_id: UUID | None) -> Iterator[WorkspaceState]:
    with context.store.connection() as connection:
        statement = select(workspaces.c.id)
        if org_id is not None:
            statement = statement.where(workspaces.c.org_id == org_id)
        for workspace_id in sorted(connection.execute(statement).scalars()):
            state = read_workspace_state(connection, workspace_id)
            assert state is not None
            yield state


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    fleet=fleets(),
    policy=st.sampled_from([DROPS_THE_ORG_RUNG, OWN_KEY_WINS, CONTRACT_POLICY]),
    proxy=st.sampled_from([SAAS_PROXY, SELF_HOST]),
    samples=st.integers(1, 3),
    first_org_only=st.booleans(),
)
def test_the_grouped_what_if_reports_what_deciding_each_workspace_reports(
    fleet_url: str,
    fleet: tuple[list[Org], list[Workspace]],
    policy: CompiledPolicy,
    proxy: ProxySettings,
    samples: int,
    first_org_only: bool,
) -> None:
    orgs, workspace_list = fleet
    with _context(fleet_url, proxy) as context:
        org_ids = store_fleet(context, orgs, workspace_list)
        org_id = org_ids[0] if first_org_only else None
        proposed = proposed_configuration(context, policy, None)
        grouped = run_whatif(context, proposed, org_id=org_id, samples_per_class=samples)
        assert grouped.to_document() == one_by_one(context, proposed, org_id, samples)
