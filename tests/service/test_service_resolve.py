"""The read path (spec §2, §5, §6): a stored workspace's decision, and failures beside it."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import text, update
from tests.store.db_fixtures import SAAS_PROXY, SELF_HOST, ContextFactory, stored_workspace

from llmbilling.core.modes import BillingMode, DecisionSource, DerivationOutcome
from llmbilling.core.provisioning import ProxySettings
from llmbilling.errors import InvalidInputError, WorkspaceNotFoundError
from llmbilling.service.context import ServiceContext
from llmbilling.service.resolve import resolve_workspace
from llmbilling.store.tables import workspaces

P, B, D = BillingMode.PLATFORM_MANAGED, BillingMode.BYOK, BillingMode.DISABLED
S = DecisionSource


@pytest.mark.parametrize(
    ("override", "org_raw", "runtime", "model", "org_secrets", "proxy", "mode", "source"),
    [
        (
            None,
            "platform_managed",
            "claude-code",
            "kimi-for-coding",
            {},
            SAAS_PROXY,
            P,
            S.ORG_DEFAULT,
        ),
        (None, None, "claude-code", "kimi-for-coding", {}, SAAS_PROXY, B, S.DERIVED_PROVIDER),
        (
            "byok",
            "platform_managed",
            "claude-code",
            "platform/claude-opus-4-7",
            {},
            SAAS_PROXY,
            B,
            S.WORKSPACE_OVERRIDE,
        ),
        (None, "  BYOK ", "codex", "openai/gpt-5.4", {}, SAAS_PROXY, B, S.ORG_DEFAULT),
        (None, "byokk", "codex", "gpt-5.5", {}, SAAS_PROXY, B, S.DERIVED_PROVIDER),
        (None, None, "claude-code", None, {}, SAAS_PROXY, P, S.DERIVED_DEFAULT),
        (None, None, "claude-code", "totally-made-up", {}, SELF_HOST, B, S.DERIVED_DEFAULT),
        (
            None,
            None,
            "claude-code",
            "opus",
            {"CLAUDE_CODE_OAUTH_TOKEN": "t"},
            SAAS_PROXY,
            B,
            S.DERIVED_PROVIDER,
        ),
        ("disabled", "byok", "codex", "gpt-5.5", {}, SAAS_PROXY, D, S.WORKSPACE_OVERRIDE),
    ],
)
def test_stored_state_decides_like_the_contract_examples(
    make_context: ContextFactory,
    override: str | None,
    org_raw: str | None,
    runtime: str,
    model: str | None,
    org_secrets: dict[str, str],
    proxy: ProxySettings,
    mode: BillingMode,
    source: DecisionSource,
) -> None:
    context = make_context(proxy=proxy)
    _, workspace_id = stored_workspace(
        context,
        override=override,
        org_default=org_raw,
        runtime=runtime,
        model=model,
        org_secrets=org_secrets,
    )
    decision = resolve_workspace(context, workspace_id)
    assert (decision.mode, decision.source) == (mode, source)
    assert decision.workspace_id == str(workspace_id)
    assert decision.error is None


@pytest.mark.parametrize("proxy", [SAAS_PROXY, SELF_HOST], ids=["saas", "self-host"])
@pytest.mark.parametrize("stored_runtime", ["clade-code", "Claude Code", " "])
def test_a_stored_runtime_the_registry_does_not_know_decides_the_deployment_default(
    make_context: ContextFactory, proxy: ProxySettings, stored_runtime: str
) -> None:
    """Writes refuse unknown runtimes; a row another tool wrote with one still resolves."""
    context = make_context(proxy=proxy)
    _, workspace_id = stored_workspace(context, runtime="codex", model="gpt-5.5")
    with context.store.engine.begin() as connection:
        connection.execute(
            update(workspaces).where(workspaces.c.id == workspace_id).values(runtime=stored_runtime)
        )
    decision = resolve_workspace(context, workspace_id)
    assert (decision.mode, decision.source) == (P if proxy.configured else B, S.DERIVED_DEFAULT)
    assert decision.derivation.outcome is DerivationOutcome.UNKNOWN_RUNTIME
    assert decision.error is None


def test_the_deployment_org_default_applies_when_the_org_stores_none(
    make_context: ContextFactory,
) -> None:
    context = make_context(org_default="BYOK")
    _, workspace_id = stored_workspace(context, model="platform/claude-opus-4-7")
    decision = resolve_workspace(context, workspace_id)
    assert (decision.mode, decision.source) == (B, S.ORG_DEFAULT)
    assert decision.org_default.raw == "BYOK"


def test_the_stored_org_default_beats_the_deployment_value(make_context: ContextFactory) -> None:
    context = make_context(org_default="byok")
    _, workspace_id = stored_workspace(context, org_default="disabled")
    decision = resolve_workspace(context, workspace_id)
    assert (decision.mode, decision.source) == (D, S.ORG_DEFAULT)


@pytest.mark.parametrize(
    ("org_secrets", "workspace_secrets", "expected_provider"),
    [
        ({"MODEL": "gpt-5.5"}, {}, "openai"),
        ({"MOLECULE_MODEL": "gpt-5.5", "MODEL": "deepseek-chat"}, {}, "openai"),
        ({"MOLECULE_MODEL": "gpt-5.5"}, {"MOLECULE_MODEL": "kimi-for-coding"}, "kimi-coding"),
        ({"MOLECULE_MODEL": "gpt-5.5"}, {"MODEL": "kimi-for-coding"}, "openai"),
        ({"MOLECULE_MODEL": "  "}, {"MODEL": "deepseek-chat"}, "deepseek"),
    ],
)
def test_without_a_stored_model_the_read_path_takes_the_effective_model_from_secrets(
    context: ServiceContext,
    org_secrets: dict[str, str],
    workspace_secrets: dict[str, str],
    expected_provider: str,
) -> None:
    _, workspace_id = stored_workspace(
        context,
        runtime="langgraph",  # lists openai, kimi-coding and deepseek
        model=None,
        org_secrets=org_secrets,
        workspace_secrets=workspace_secrets,
    )
    decision = resolve_workspace(context, workspace_id)
    assert (decision.source, decision.provider) == (S.DERIVED_PROVIDER, expected_provider)


def test_an_unknown_workspace_is_a_typed_not_found_error(context: ServiceContext) -> None:
    missing = uuid.uuid4()
    with pytest.raises(WorkspaceNotFoundError) as raised:
        resolve_workspace(context, missing)
    assert raised.value.code == "WORKSPACE_NOT_FOUND"
    assert str(missing) in raised.value.message


@pytest.mark.parametrize("bad_id", ["", "not-a-uuid", "1234", "../etc"])
def test_a_malformed_workspace_id_is_invalid_input_naming_the_field(
    context: ServiceContext, bad_id: str
) -> None:
    with pytest.raises(InvalidInputError) as raised:
        resolve_workspace(context, bad_id)
    assert raised.value.field == "workspace_id"


def _unreachable_url(engine_url: str, tmp_path: Path) -> str:
    if engine_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path}"  # a directory: SQLite cannot open it
    # A closed port on this host, with a password that must never be echoed.
    return "postgresql://postgres:hunter2-SENTINEL@127.0.0.1:1/test"


def test_an_unreachable_database_yields_the_constant_fallback_with_the_error_beside_it(
    make_context: ContextFactory, engine_url: str, tmp_path: Path
) -> None:
    context = make_context(database_url=_unreachable_url(engine_url, tmp_path))
    decision = resolve_workspace(context, uuid.uuid4())
    assert (decision.mode, decision.source) == (P, S.CONSTANT_FALLBACK)
    assert decision.error is not None
    assert decision.error.code == "OVERRIDE_READ_FAILED"
    assert "the database cannot be reached" in decision.error.message
    assert "SENTINEL" not in decision.error.message
    assert "\n" not in decision.error.message


def test_on_self_host_the_fallback_is_byok(
    make_context: ContextFactory, engine_url: str, tmp_path: Path
) -> None:
    context = make_context(proxy=SELF_HOST, database_url=_unreachable_url(engine_url, tmp_path))
    decision = resolve_workspace(context, uuid.uuid4())
    assert (decision.mode, decision.source) == (B, S.CONSTANT_FALLBACK)


def test_a_dropped_connection_yields_the_constant_fallback_then_recovers(
    make_context: ContextFactory, engine_url: str
) -> None:
    if not engine_url.startswith("postgresql"):
        pytest.skip("a server-side connection drop exists on PostgreSQL only")
    setup = make_context()
    _, workspace_id = stored_workspace(setup, org_default="byok")
    context = make_context(pool_pre_ping=False)
    assert resolve_workspace(context, workspace_id).source is S.ORG_DEFAULT
    with context.store.read_engine.connect() as connection:  # the pooled connection
        backend = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with setup.store.engine.begin() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})

    dropped = resolve_workspace(context, workspace_id)
    assert (dropped.mode, dropped.source) == (P, S.CONSTANT_FALLBACK)
    assert dropped.error is not None
    assert dropped.error.code == "OVERRIDE_READ_FAILED"

    assert resolve_workspace(context, workspace_id).source is S.ORG_DEFAULT
