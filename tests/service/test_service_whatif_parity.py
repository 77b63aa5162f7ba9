"""Differential test: the fleet what-if decides every workspace exactly as the read path does.

On a seeded synthetic fleet (every runtime, garbled org defaults, overrides, models held in
sealed MOLECULE_MODEL/MODEL secrets, credentials of both scopes), the what-if's counts per
(mode, source) under each configuration equal those of resolving every workspace one by one
through the read path under that configuration.
"""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select
from tests.store.db_fixtures import KEY_RING_TEXT, SAAS_PROXY, SELF_HOST, DatabaseFactory

from llmbilling import ProxySettings, compile_policy
from llmbilling.config.registry import built_in_registry
from llmbilling.core.policy import CONTRACT_POLICY, CompiledPolicy
from llmbilling.service.context import DeploymentInputs, ServiceContext
from llmbilling.service.demo import seed_demo_fleet
from llmbilling.service.resolve import resolve_workspace
from llmbilling.service.whatif import proposed_configuration, run_whatif
from llmbilling.store import migrate
from llmbilling.store.crypto import KeyRing
from llmbilling.store.engine import open_store
from llmbilling.store.tables import workspaces

FLEET_SIZE = 600
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


@pytest.fixture
def fleet_url(new_database: DatabaseFactory) -> str:
    url = new_database()
    store = open_store(url)
    try:
        migrate.upgrade(store)
    finally:
        store.close()
    context = _context(url, CONTRACT_POLICY, SAAS_PROXY)
    try:
        seed_demo_fleet(context, workspace_count=FLEET_SIZE, seed=2608)
    finally:
        context.close()
    return url


def _context(url: str, policy: CompiledPolicy, proxy: ProxySettings) -> ServiceContext:
    return ServiceContext(
        open_store(url),
        DeploymentInputs(proxy=proxy, org_default="platform_managed"),
        built_in_registry(),
        key_ring_loader=lambda: KeyRing.parse(KEY_RING_TEXT),
        policy=policy,
    )


def read_path_counts(
    url: str, policy: CompiledPolicy, proxy: ProxySettings
) -> tuple[Counter[str], Counter[str]]:
    """(modes, sources) of every workspace resolved one by one through the read path."""
    with _context(url, policy, proxy) as context:
        with context.store.read_engine.connect() as connection:
            ids = list(connection.execute(select(workspaces.c.id)).scalars())
        decisions = [resolve_workspace(context, workspace_id) for workspace_id in ids]
    return (
        Counter(d.mode.value for d in decisions),
        Counter(d.source.value for d in decisions),
    )


def side(transitions: dict[tuple[str, str], int], index: int) -> Counter[str]:
    """Counts of the before (0) or after (1) side of a report's transitions."""
    counts: Counter[str] = Counter()
    for transition, count in transitions.items():
        counts[transition[index]] += count
    return counts


@pytest.mark.parametrize("proposed_policy", [DROPS_THE_ORG_RUNG, OWN_KEY_WINS, CONTRACT_POLICY])
@pytest.mark.parametrize("proxy", [SAAS_PROXY, SELF_HOST], ids=["saas", "self-host"])
def test_what_if_decides_every_workspace_as_the_read_path_does(
    fleet_url: str, proposed_policy: CompiledPolicy, proxy: ProxySettings
) -> None:
    with _context(fleet_url, CONTRACT_POLICY, proxy) as context:
        report = run_whatif(
            context, proposed_configuration(context, proposed_policy, None), page_size=97
        )
    assert report.total == FLEET_SIZE
    for index, policy in enumerate((CONTRACT_POLICY, proposed_policy)):
        modes, sources = read_path_counts(fleet_url, policy, proxy)
        assert side(report.mode_transitions, index) == modes
        assert side(report.source_transitions, index) == sources
