"""Provisioning from stored state (spec §4): env, typed errors, parity with reads, flips."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from tests.store.db_fixtures import SAAS_PROXY, SELF_HOST, ContextFactory, stored_workspace

from llmbilling.cli.app import exit_code_for
from llmbilling.core.modes import BillingMode, DecisionSource
from llmbilling.core.provisioning import ProxySettings
from llmbilling.errors import (
    MissingByokCredentialError,
    MissingModelError,
    MissingPlatformProxyError,
    ProvisionError,
    WorkspaceNotFoundError,
)
from llmbilling.service import admin
from llmbilling.service.context import ServiceContext
from llmbilling.service.provision import provision_workspace
from llmbilling.service.resolve import resolve_workspace
from llmbilling.store.tables import audit_log, provisions, workspaces

P, B, D = BillingMode.PLATFORM_MANAGED, BillingMode.BYOK, BillingMode.DISABLED


def test_platform_managed_strips_credentials_and_points_the_runtime_at_the_proxy(
    context: ServiceContext,
) -> None:
    _, workspace_id = stored_workspace(
        context,
        org_default="platform_managed",
        org_secrets={"ANTHROPIC_API_KEY": "sk-org", "GITHUB_TOKEN": "gh"},
        workspace_secrets={"CLAUDE_CODE_OAUTH_TOKEN": "oauth"},
    )
    env = provision_workspace(context, workspace_id).provision.env
    assert env["ANTHROPIC_BASE_URL"] == SAAS_PROXY.anthropic_base_url
    assert env["ANTHROPIC_API_KEY"] == SAAS_PROXY.usage_token
    assert env["ANTHROPIC_CUSTOM_HEADERS"] == f"X-Molecule-Workspace-Id: {workspace_id}"
    assert "CLAUDE_CODE_OAUTH_TOKEN" not in env
    assert env["GITHUB_TOKEN"] == "gh"
    assert (env["MOLECULE_LLM_BILLING_MODE"], env["MOLECULE_LLM_BILLING_SOURCE"]) == (
        "platform_managed",
        "org_default",
    )


def test_byok_keeps_the_providers_credential_and_strips_foreign_org_credentials(
    context: ServiceContext,
) -> None:
    _, workspace_id = stored_workspace(
        context,
        runtime="claude-code",
        model="MiniMax-M2",
        org_secrets={"MINIMAX_API_KEY": "mm", "CLAUDE_CODE_OAUTH_TOKEN": "org-oauth"},
        workspace_secrets={"OPENAI_API_KEY": "ws-openai"},
    )
    result = provision_workspace(context, workspace_id).provision
    assert result.decision.provider == "minimax"
    assert result.env["MINIMAX_API_KEY"] == "mm"
    assert "CLAUDE_CODE_OAUTH_TOKEN" not in result.env
    assert result.env["OPENAI_API_KEY"] == "ws-openai"
    assert result.foreign_credentials_kept == ("OPENAI_API_KEY",)


def test_the_2608_regression_org_default_platform_managed_provisions_without_credentials(
    context: ServiceContext,
) -> None:
    _, workspace_id = stored_workspace(
        context, org_default="platform_managed", model="kimi-for-coding"
    )
    result = provision_workspace(context, workspace_id).provision
    assert (result.decision.mode, result.decision.source) == (P, DecisionSource.ORG_DEFAULT)


@pytest.mark.parametrize(
    ("setup", "proxy", "error", "exit_code"),
    [
        ({"model": None}, SAAS_PROXY, MissingModelError, 3),
        ({"org_default": "platform_managed"}, SELF_HOST, MissingPlatformProxyError, 4),
        ({"model": "gpt-5.5", "runtime": "codex"}, SAAS_PROXY, MissingByokCredentialError, 5),
    ],
    ids=["MISSING_MODEL", "MISSING_PLATFORM_PROXY", "MISSING_BYOK_CREDENTIAL"],
)
def test_unprovisionable_states_raise_typed_errors_with_their_own_exit_codes(
    make_context: ContextFactory,
    setup: dict[str, str | None],
    proxy: ProxySettings,
    error: type[ProvisionError],
    exit_code: int,
) -> None:
    context = make_context(proxy=proxy)
    _, workspace_id = stored_workspace(context, **setup)  # type: ignore[arg-type]
    with pytest.raises(error) as raised:
        provision_workspace(context, workspace_id)
    assert exit_code_for(raised.value) == exit_code
    assert "\n" not in raised.value.message
    with context.store.read_engine.connect() as connection:
        recorded = connection.execute(
            select(provisions.c.id).where(provisions.c.workspace_id == workspace_id)
        ).all()
    assert recorded == []  # nothing is recorded for a provision that did not happen


def test_provisioning_an_unknown_workspace_is_not_found(context: ServiceContext) -> None:
    with pytest.raises(WorkspaceNotFoundError):
        provision_workspace(context, "00000000-0000-4000-8000-000000000000")


PARITY_STATES: list[dict[str, object]] = [
    {"model": None, "org_secrets": {"MODEL": "gpt-5.5", "OPENAI_API_KEY": "k"}, "runtime": "codex"},
    {
        "model": None,
        "workspace_secrets": {"MOLECULE_MODEL": "deepseek-chat", "DEEPSEEK_API_KEY": "k"},
    },
    {
        "model": None,
        "org_secrets": {"MOLECULE_MODEL": "gpt-5.5", "OPENAI_API_KEY": "k"},
        "workspace_secrets": {"MODEL": "kimi-for-coding"},
        "runtime": "codex",
    },
    {"model": "opus", "org_secrets": {"ANTHROPIC_API_KEY": "k", "CLAUDE_CODE_OAUTH_TOKEN": "t"}},
    {"model": "opus", "workspace_secrets": {"CLAUDE_CODE_OAUTH_TOKEN": "t"}},
    {
        "model": "platform/claude-opus-4-7",
        "org_default": "  BYOK ",
        "org_secrets": {"ANTHROPIC_API_KEY": "k"},
    },
    {"model": "totally-made-up", "org_default": "byokk"},
    {"model": "gpt-5.5", "runtime": "codex", "override": "disabled"},
]


@pytest.mark.parametrize("state", PARITY_STATES)
def test_the_read_path_and_the_provision_path_decide_the_same(
    context: ServiceContext, state: dict[str, object]
) -> None:
    _, workspace_id = stored_workspace(context, **state)  # type: ignore[arg-type]
    read = resolve_workspace(context, workspace_id)
    provisioned = provision_workspace(context, workspace_id).provision.decision
    assert provisioned.to_dict() == read.to_dict()
    reprovisioned = provision_workspace(context, workspace_id).provision.decision
    assert reprovisioned.to_dict() == read.to_dict()


def test_a_request_model_is_persisted_so_reads_and_reprovisions_agree(
    context: ServiceContext,
) -> None:
    _, workspace_id = stored_workspace(
        context, runtime="codex", model=None, org_secrets={"OPENAI_API_KEY": "k"}
    )
    first = provision_workspace(context, workspace_id, request_model="gpt-5.5")
    assert admin.get_workspace(context, workspace_id).model == "gpt-5.5"
    read = resolve_workspace(context, workspace_id)
    again = provision_workspace(context, workspace_id)  # no model in the request
    assert (
        first.provision.decision.to_dict() == read.to_dict() == again.provision.decision.to_dict()
    )
    assert again.provision.env["MODEL"] == "gpt-5.5"
    with context.store.read_engine.connect() as connection:
        actions = connection.execute(
            select(audit_log.c.action, audit_log.c.after)
            .where(audit_log.c.workspace_id == workspace_id)
            .order_by(audit_log.c.id)
        ).all()
    assert ("workspace.model_set", {"model": "gpt-5.5"}) in [tuple(a) for a in actions]


def test_every_provision_records_its_decision_and_versions(context: ServiceContext) -> None:
    _, workspace_id = stored_workspace(
        context, org_default="byok", org_secrets={"ANTHROPIC_API_KEY": "k"}
    )
    result = provision_workspace(context, workspace_id)
    with context.store.read_engine.connect() as connection:
        row = connection.execute(
            select(provisions).where(provisions.c.id == result.provision_id)
        ).one()
    decision = result.provision.decision
    assert (row.mode, row.source, row.provider, row.model) == (
        "byok",
        "org_default",
        None,
        "claude-opus-4-7",
    )
    assert row.registry_version == decision.versions.registry
    assert row.policy_version == decision.versions.policy
    assert row.flipped_from is None


def test_a_mode_change_between_provisions_is_reported_and_audited_as_a_flip(
    context: ServiceContext,
) -> None:
    _, workspace_id = stored_workspace(context, org_default="platform_managed")
    assert provision_workspace(context, workspace_id).flipped_from is None
    admin.set_override(context, workspace_id, "disabled")

    flipped = provision_workspace(context, workspace_id)
    steady = provision_workspace(context, workspace_id)

    assert flipped.flipped_from is P
    assert flipped.public_summary()["flipped_from"] == "platform_managed"
    assert steady.flipped_from is None
    with context.store.read_engine.connect() as connection:
        flips = connection.execute(
            select(audit_log.c.before, audit_log.c.after).where(
                audit_log.c.workspace_id == workspace_id,
                audit_log.c.action == "workspace.billing_mode_flipped",
            )
        ).all()
        stored = (
            connection.execute(
                select(provisions.c.flipped_from)
                .where(provisions.c.workspace_id == workspace_id)
                .order_by(provisions.c.id)
            )
            .scalars()
            .all()
        )
    assert [tuple(f) for f in flips] == [
        ({"mode": "platform_managed"}, {"mode": "disabled", "source": "workspace_override"})
    ]
    assert stored == [None, "platform_managed", None]


def test_the_stored_model_column_is_untouched_without_a_request_model(
    context: ServiceContext,
) -> None:
    _, workspace_id = stored_workspace(
        context,
        model=None,
        org_secrets={"MODEL": "gpt-5.5", "OPENAI_API_KEY": "k"},
        runtime="codex",
    )
    provision_workspace(context, workspace_id)
    with context.store.read_engine.connect() as connection:
        model = connection.execute(
            select(workspaces.c.model).where(workspaces.c.id == workspace_id)
        ).scalar_one()
    assert model is None
