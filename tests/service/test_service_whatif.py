"""Fleet what-if over real stored state (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid

import pytest
from tests.store.db_fixtures import ContextFactory, stored_workspace

from llmbilling import compile_policy
from llmbilling.core.whatif import DangerClass
from llmbilling.service import admin, secrets
from llmbilling.service.context import ServiceContext
from llmbilling.service.whatif import (
    count_workspaces,
    current_configuration,
    proposed_configuration,
    run_whatif,
)

P2B = compile_policy(
    {"rungs": ["workspace_override", "derived_provider", "deployment_default"]}, "p2b.yaml"
)


def fresh_fleet(context: ServiceContext, size: int) -> uuid.UUID:
    """An org defaulting to platform_managed with fresh workspaces on a vendor model, no key."""
    org = admin.create_org(context, "saas-org")
    admin.set_org_default(context, org.id, "platform_managed")
    for _ in range(size):
        admin.create_workspace(context, org.id, runtime="claude-code", model="kimi-for-coding")
    return org.id


def test_2608_replay_flags_every_fresh_workspace_to_byok_without_credential(
    context: ServiceContext,
) -> None:
    org_id = fresh_fleet(context, 7)
    keyed = admin.create_workspace(context, org_id, runtime="claude-code", model="kimi-for-coding")
    secrets.set_secret(context, "workspace", keyed.id, "KIMI_API_KEY", "sk-kimi")
    report = run_whatif(
        context, proposed_configuration(context, P2B, None), org_id=org_id, page_size=3
    )
    assert report.total == 8
    assert report.mode_transitions == {("platform_managed", "byok"): 8}
    assert report.dangers[DangerClass.TO_BYOK_WITHOUT_CREDENTIAL] == 7
    assert report.has_danger


def test_the_current_configuration_against_itself_changes_nothing(
    context: ServiceContext,
) -> None:
    org_id = fresh_fleet(context, 4)
    report = run_whatif(context, current_configuration(context), org_id=org_id, page_size=2)
    assert report.total == 4
    assert report.changed == 0
    assert not report.has_danger


def test_org_filter_streams_only_that_orgs_workspaces(context: ServiceContext) -> None:
    saas_org = fresh_fleet(context, 3)
    other_org, _ = stored_workspace(context, model="gpt-5.5")
    report = run_whatif(context, proposed_configuration(context, P2B, None), org_id=saas_org)
    assert report.total == 3 == count_workspaces(context, saas_org)
    assert set(report.per_org_mode_transitions) == {str(saas_org)}
    assert count_workspaces(context, other_org) == 1


def test_progress_is_reported_as_rows_are_decided(context: ServiceContext) -> None:
    org_id = fresh_fleet(context, 5)
    seen: list[int] = []
    run_whatif(
        context,
        current_configuration(context),
        org_id=org_id,
        on_progress=seen.append,
        progress_every=2,
        page_size=2,
    )
    assert seen == [2, 4, 5]


def test_what_if_reports_the_versions_it_compared(context: ServiceContext) -> None:
    org_id = fresh_fleet(context, 1)
    report = run_whatif(context, proposed_configuration(context, P2B, None), org_id=org_id)
    registry = context.registry
    assert registry is not None
    assert report.current_versions == (context.policy.version, registry.version)
    assert report.proposed_versions == (P2B.version, registry.version)


def test_an_unreachable_store_is_a_typed_error(make_context: ContextFactory) -> None:
    from llmbilling.errors import StoreUnavailableError

    down = make_context(database_url="postgresql://postgres@127.0.0.1:9/none")
    with pytest.raises(StoreUnavailableError):
        run_whatif(down, current_configuration(down))
