"""The provisioning env (spec §4): what each billing mode puts in a container, and what it never
lets through. Decisions come from the real resolver over the real built-in registry."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from llmbilling.core.decision import BillingDecision, OverrideReadFailure, ResolutionInput
from llmbilling.core.modes import BillingMode, DecisionSource
from llmbilling.core.provisioning import (
    CLAUDE_CODE_OAUTH_TOKEN,
    MissingByokCredentialError,
    MissingModelError,
    MissingPlatformProxyError,
    ProvisionEnv,
    ProvisionError,
    ProxySettings,
    build_provision_env,
    effective_model,
)
from llmbilling.core.resolve import resolve_billing_mode
from llmbilling.core.secrets import SecretScope, SecretValue, merge_secret_scopes
from llmbilling.errors import InvalidInputError
from llmbilling.registry_files import built_in_registry

REGISTRY = built_in_registry()
WORKSPACE_ID = "3f1c2b9e-0d4a-4c7e-9b1a-2e5f6a7b8c9d"
SENTINEL = "SENTINEL"
USAGE_TOKEN = "usage-SENTINEL-token"
PROXY = ProxySettings(
    base_url="https://proxy.example/v1",
    usage_token=USAGE_TOKEN,
    anthropic_base_url="https://proxy.example/anthropic",
    usage_url="https://proxy.example/usage",
)
BARE_PROXY = ProxySettings(base_url="https://proxy.example/v1", usage_token=USAGE_TOKEN)
NO_PROXY = ProxySettings()
HEADER = f"X-Molecule-Workspace-Id: {WORKSPACE_ID}"
EVIL = "https://evil.example"
CREDENTIALS = REGISTRY.all_auth_env | {CLAUDE_CODE_OAUTH_TOKEN}
ENDPOINTS = REGISTRY.all_endpoint_env
BILLING_EXPORTS = (
    "MOLECULE_LLM_BILLING_MODE",
    "MOLECULE_LLM_BILLING_MODE_RESOLVED",
    "MOLECULE_LLM_BILLING_SOURCE",
)
PROXY_EXPORTS = frozenset(
    {
        "MOLECULE_LLM_BASE_URL",
        "MOLECULE_LLM_USAGE_TOKEN",
        "MOLECULE_LLM_ANTHROPIC_BASE_URL",
        "MOLECULE_LLM_USAGE_URL",
    }
)
# Every name that points a runtime somewhere: the platform's exports and the runtimes' own.
PROXY_NAMES = PROXY_EXPORTS | {"ANTHROPIC_BASE_URL", "ANTHROPIC_CUSTOM_HEADERS", "OPENAI_BASE_URL"}


def key(name: str) -> str:
    """A recognisable secret value: it must never show up outside ``ProvisionEnv.env``."""
    return f"sk-{SENTINEL}-{name.lower()}"


def secrets(*names: str) -> dict[str, str]:
    return {name: key(name) for name in names}


def decide(
    merged_env: Mapping[str, SecretValue],
    *,
    override: str | OverrideReadFailure | None = None,
    org_default: str | None = None,
    runtime: str = "claude-code",
    model: str = "claude-opus-4-7",
    proxy: ProxySettings = PROXY,
) -> BillingDecision:
    return resolve_billing_mode(
        ResolutionInput(
            workspace_id=WORKSPACE_ID,
            override=override,
            org_default=org_default,
            runtime=runtime,
            model=model,
            auth_env=frozenset(merged_env),
            proxy_configured=proxy.configured,
        ),
        REGISTRY,
    )


def provision(
    *,
    org: Mapping[str, str] | None = None,
    workspace: Mapping[str, str] | None = None,
    override: str | OverrideReadFailure | None = None,
    org_default: str | None = None,
    runtime: str = "claude-code",
    model: str = "claude-opus-4-7",
    proxy: ProxySettings = PROXY,
) -> ProvisionEnv:
    """Resolve, then build the env, the way the service layer does at provision time."""
    merged = merge_secret_scopes(org or {}, workspace or {})
    decision = decide(
        merged,
        override=override,
        org_default=org_default,
        runtime=runtime,
        model=model,
        proxy=proxy,
    )
    return build_provision_env(
        decision,
        workspace_id=WORKSPACE_ID,
        runtime=runtime,
        model=model,
        merged_env=merged,
        proxy=proxy,
        registry=REGISTRY,
    )


# --- Secret scopes and values ----------------------------------------------------------------


def test_workspace_scope_overrides_org_scope_of_the_same_name() -> None:
    merged = merge_secret_scopes({"OPENAI_API_KEY": "org"}, {"OPENAI_API_KEY": "workspace"})
    assert merged == {"OPENAI_API_KEY": SecretValue("workspace", SecretScope.WORKSPACE)}


def test_org_scope_secrets_are_inherited_remembering_their_scope() -> None:
    merged = merge_secret_scopes({"MINIMAX_API_KEY": "org"}, {"OPENAI_API_KEY": "ws"})
    assert merged == {
        "MINIMAX_API_KEY": SecretValue("org", SecretScope.ORG),
        "OPENAI_API_KEY": SecretValue("ws", SecretScope.WORKSPACE),
    }


# --- Proxy settings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deployment_env", "expected"),
    [
        pytest.param(
            {"MOLECULE_LLM_BASE_URL": "https://m", "OPENAI_BASE_URL": "https://o"},
            ProxySettings(base_url="https://m"),
            id="MOLECULE_LLM_BASE_URL beats OPENAI_BASE_URL",
        ),
        pytest.param(
            {"OPENAI_BASE_URL": "https://o"},
            ProxySettings(base_url="https://o"),
            id="OPENAI_BASE_URL when MOLECULE_LLM_BASE_URL is absent",
        ),
        pytest.param(
            {"MOLECULE_LLM_BASE_URL": "  ", "OPENAI_BASE_URL": "https://o"},
            ProxySettings(base_url="https://o"),
            id="blank MOLECULE_LLM_BASE_URL counts as absent",
        ),
        pytest.param(
            {"MOLECULE_LLM_USAGE_TOKEN": "m", "OPENAI_API_KEY": "o"},
            ProxySettings(usage_token="m"),
            id="MOLECULE_LLM_USAGE_TOKEN beats OPENAI_API_KEY",
        ),
        pytest.param(
            {"OPENAI_API_KEY": "o"},
            ProxySettings(usage_token="o"),
            id="OPENAI_API_KEY when MOLECULE_LLM_USAGE_TOKEN is absent",
        ),
        pytest.param(
            {"MOLECULE_LLM_ANTHROPIC_BASE_URL": "https://m", "ANTHROPIC_BASE_URL": "https://a"},
            ProxySettings(anthropic_base_url="https://m"),
            id="MOLECULE_LLM_ANTHROPIC_BASE_URL beats ANTHROPIC_BASE_URL",
        ),
        pytest.param(
            {"ANTHROPIC_BASE_URL": "https://a"},
            ProxySettings(anthropic_base_url="https://a"),
            id="ANTHROPIC_BASE_URL when MOLECULE_LLM_ANTHROPIC_BASE_URL is absent",
        ),
        pytest.param(
            {"MOLECULE_LLM_USAGE_URL": " https://u "},
            ProxySettings(usage_url="https://u"),
            id="usage URL from MOLECULE_LLM_USAGE_URL, stripped",
        ),
        pytest.param({}, ProxySettings(), id="nothing set"),
    ],
)
def test_proxy_settings_precedence(deployment_env: dict[str, str], expected: ProxySettings) -> None:
    assert ProxySettings.from_env(deployment_env) == expected


@pytest.mark.parametrize(
    ("settings_", "configured", "missing"),
    [
        (ProxySettings(base_url="https://p", usage_token="t"), True, ()),
        (ProxySettings(usage_token="t"), False, ("base URL",)),
        (ProxySettings(base_url="https://p", usage_token=" "), False, ("usage token",)),
        (ProxySettings(), False, ("base URL", "usage token")),
    ],
)
def test_proxy_is_configured_only_with_a_base_url_and_a_usage_token(
    settings_: ProxySettings, configured: bool, missing: tuple[str, ...]
) -> None:
    assert (settings_.configured, settings_.missing) == (configured, missing)


# --- Effective model -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_model", "stored_model", "env", "expected"),
    [
        pytest.param("gpt-5.5", "opus", {"MOLECULE_MODEL": "m", "MODEL": "n"}, "gpt-5.5",
                     id="request beats stored"),
        pytest.param(None, "opus", {"MOLECULE_MODEL": "m", "MODEL": "n"}, "opus",
                     id="stored beats MOLECULE_MODEL"),
        pytest.param(None, None, {"MOLECULE_MODEL": "m", "MODEL": "n"}, "m",
                     id="MOLECULE_MODEL beats MODEL"),
        pytest.param(None, None, {"MODEL": "n"}, "n", id="MODEL last"),
        pytest.param(" ", "", {"MOLECULE_MODEL": "\t", "MODEL": " n "}, "n",
                     id="blank values count as absent; the result is stripped"),
        pytest.param(None, None, {}, None, id="no model at all"),
    ],
)  # fmt: skip
def test_effective_model_order(
    request_model: str | None, stored_model: str | None, env: dict[str, str], expected: str | None
) -> None:
    merged = merge_secret_scopes({}, env)
    assert effective_model(request_model, stored_model, merged) == expected


def test_effective_model_is_exported_stripped_as_molecule_model_and_model() -> None:
    result = provision(model=" claude-opus-4-7 ", org=secrets("ANTHROPIC_API_KEY"), override="byok")
    assert (result.env["MOLECULE_MODEL"], result.env["MODEL"]) == ("claude-opus-4-7",) * 2


def test_exported_model_replaces_a_tenant_model_variable() -> None:
    result = provision(
        override="platform_managed", workspace={"MODEL": "gpt-5.5"}, model="claude-opus-4-7"
    )
    assert result.env["MODEL"] == "claude-opus-4-7"


@pytest.mark.parametrize("model", ["", "   "])
def test_no_effective_model_is_an_error_not_a_silent_choice(model: str) -> None:
    with pytest.raises(MissingModelError):
        provision(model=model)


# --- Always exported -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "source"),
    [
        ("platform_managed", "workspace_override"),
        ("byok", "workspace_override"),
        ("disabled", "workspace_override"),
        (None, "derived_provider"),
    ],
)
def test_the_decision_is_exported_for_people_inside_the_container(
    override: str | None, source: str
) -> None:
    result = provision(override=override, org=secrets("ANTHROPIC_API_KEY"))
    mode = result.decision.mode.value
    assert {name: result.env[name] for name in BILLING_EXPORTS} == {
        "MOLECULE_LLM_BILLING_MODE": mode,
        "MOLECULE_LLM_BILLING_MODE_RESOLVED": mode,
        "MOLECULE_LLM_BILLING_SOURCE": source,
    }


def test_a_tenant_cannot_fake_the_exported_decision() -> None:
    result = provision(
        override="platform_managed",
        workspace={"MOLECULE_LLM_BILLING_MODE": "byok", "MOLECULE_LLM_BILLING_SOURCE": "x"},
    )
    assert (result.env["MOLECULE_LLM_BILLING_MODE"], result.env["MOLECULE_LLM_BILLING_SOURCE"]) == (
        "platform_managed",
        "workspace_override",
    )


def test_other_tenant_variables_pass_through() -> None:
    result = provision(override="platform_managed", workspace={"GITHUB_REPO": "acme/app"})
    assert result.env["GITHUB_REPO"] == "acme/app"


# --- platform_managed ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("runtime", "proxy", "expected"),
    [
        pytest.param(
            "claude-code",
            PROXY,
            {
                "ANTHROPIC_BASE_URL": "https://proxy.example/anthropic",
                "ANTHROPIC_API_KEY": USAGE_TOKEN,
                "ANTHROPIC_CUSTOM_HEADERS": HEADER,
            },
            id="anthropic runtime: the Anthropic proxy URL, token and attribution header",
        ),
        pytest.param(
            "claude-code",
            BARE_PROXY,
            {
                "ANTHROPIC_BASE_URL": "https://proxy.example/v1",
                "ANTHROPIC_API_KEY": USAGE_TOKEN,
                "ANTHROPIC_CUSTOM_HEADERS": HEADER,
            },
            id="anthropic runtime without an Anthropic proxy URL: the base URL",
        ),
        pytest.param(
            "codex",
            PROXY,
            {"OPENAI_BASE_URL": "https://proxy.example/v1", "OPENAI_API_KEY": USAGE_TOKEN},
            id="openai runtime: the proxy base URL and token",
        ),
        pytest.param(
            "hermes",
            PROXY,
            {"OPENAI_BASE_URL": "https://proxy.example/v1", "OPENAI_API_KEY": USAGE_TOKEN},
            id="another openai runtime",
        ),
        pytest.param(
            "not-in-the-registry",
            PROXY,
            {"OPENAI_BASE_URL": "https://proxy.example/v1", "OPENAI_API_KEY": USAGE_TOKEN},
            id="unknown runtime falls back to the OpenAI-compatible names",
        ),
    ],
)
def test_platform_managed_points_the_runtime_at_the_proxy(
    runtime: str, proxy: ProxySettings, expected: dict[str, str]
) -> None:
    result = provision(override="platform_managed", runtime=runtime, proxy=proxy)
    assert {name: result.env.get(name) for name in expected} == expected


@pytest.mark.parametrize("runtime", ["codex", "not-in-the-registry"])
def test_platform_managed_sets_no_anthropic_proxy_env_on_other_runtimes(runtime: str) -> None:
    result = provision(override="platform_managed", runtime=runtime)
    assert not {"ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_CUSTOM_HEADERS"} & set(
        result.env
    )


@pytest.mark.parametrize(
    ("proxy", "expected"),
    [
        pytest.param(
            PROXY,
            {
                "MOLECULE_LLM_BASE_URL": "https://proxy.example/v1",
                "MOLECULE_LLM_USAGE_TOKEN": USAGE_TOKEN,
                "MOLECULE_LLM_ANTHROPIC_BASE_URL": "https://proxy.example/anthropic",
                "MOLECULE_LLM_USAGE_URL": "https://proxy.example/usage",
            },
            id="all four when configured",
        ),
        pytest.param(
            BARE_PROXY,
            {
                "MOLECULE_LLM_BASE_URL": "https://proxy.example/v1",
                "MOLECULE_LLM_USAGE_TOKEN": USAGE_TOKEN,
            },
            id="the optional two only when configured",
        ),
    ],
)
def test_platform_managed_exports_the_proxy_settings(
    proxy: ProxySettings, expected: dict[str, str]
) -> None:
    result = provision(override="platform_managed", proxy=proxy)
    exported = {name: value for name, value in result.env.items() if name in PROXY_EXPORTS}
    assert exported == expected


@pytest.mark.parametrize("credential", sorted(CREDENTIALS))
@pytest.mark.parametrize("scope", ["org", "workspace"])
def test_platform_managed_strips_every_registry_credential(credential: str, scope: str) -> None:
    tenant = secrets(credential)
    result = provision(
        override="platform_managed",
        runtime="codex",
        org=tenant if scope == "org" else None,
        workspace=tenant if scope == "workspace" else None,
    )
    assert result.env.get(credential) in (None, USAGE_TOKEN)
    assert credential in result.stripped


@pytest.mark.parametrize(
    ("runtime", "tenant", "expected"),
    [
        pytest.param(
            "claude-code",
            {"ANTHROPIC_BASE_URL": EVIL, "ANTHROPIC_CUSTOM_HEADERS": "X-Molecule-Workspace-Id: x"},
            {"ANTHROPIC_BASE_URL": PROXY.anthropic_base_url, "ANTHROPIC_CUSTOM_HEADERS": HEADER},
            id="runtime proxy names",
        ),
        pytest.param(
            "codex",
            {"MOLECULE_LLM_BASE_URL": EVIL, "MOLECULE_LLM_USAGE_URL": EVIL},
            {"MOLECULE_LLM_BASE_URL": PROXY.base_url, "MOLECULE_LLM_USAGE_URL": PROXY.usage_url},
            id="MOLECULE_LLM_ names",
        ),
        pytest.param(
            "codex",
            {"ANTHROPIC_BASE_URL": EVIL, "MOLECULE_LLM_EXTRA": EVIL},
            {"ANTHROPIC_BASE_URL": None, "MOLECULE_LLM_EXTRA": None},
            id="other runtimes' proxy names and the whole MOLECULE_LLM_ namespace",
        ),
        pytest.param(
            "not-in-the-registry",
            {"OPENAI_BASE_URL": EVIL},
            {"OPENAI_BASE_URL": PROXY.base_url},
            id="the fallback names of an unknown runtime",
        ),
    ],
)
def test_a_tenant_cannot_redirect_the_proxy(
    runtime: str, tenant: dict[str, str], expected: dict[str, str | None]
) -> None:
    result = provision(override="platform_managed", runtime=runtime, workspace=tenant)
    assert {name: result.env.get(name) for name in expected} == expected


def test_regression_2608_fresh_workspace_with_org_default_platform_managed_and_a_vendor_model() -> (
    None
):
    # The original system decided byok from the vendor model and then failed for want of a
    # credential the workspace was never meant to have.
    result = provision(org_default="platform_managed", model="kimi-for-coding")
    assert (result.decision.mode, result.decision.source) == (
        BillingMode.PLATFORM_MANAGED,
        DecisionSource.ORG_DEFAULT,
    )
    assert result.env["ANTHROPIC_BASE_URL"] == "https://proxy.example/anthropic"
    assert result.env["ANTHROPIC_API_KEY"] == USAGE_TOKEN


@pytest.mark.parametrize(
    ("proxy", "missing"),
    [
        (ProxySettings(usage_token="t"), ("base URL",)),
        (ProxySettings(base_url="https://p"), ("usage token",)),
        (ProxySettings(base_url="https://p", usage_token="  "), ("usage token",)),
        (NO_PROXY, ("base URL", "usage token")),
    ],
)
def test_platform_managed_without_a_proxy_names_what_is_missing(
    proxy: ProxySettings, missing: tuple[str, ...]
) -> None:
    with pytest.raises(MissingPlatformProxyError) as caught:
        provision(override="platform_managed", proxy=proxy)
    assert caught.value.missing == missing
    assert all(setting in caught.value.message for setting in missing)


def test_missing_proxy_message_names_where_each_setting_is_read_from() -> None:
    with pytest.raises(MissingPlatformProxyError) as caught:
        provision(override="platform_managed", proxy=NO_PROXY)
    for name in ("MOLECULE_LLM_BASE_URL", "OPENAI_BASE_URL", "MOLECULE_LLM_USAGE_TOKEN"):
        assert name in caught.value.message


# --- byok ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("runtime", "model", "org", "workspace", "kept", "stripped", "foreign"),
    [
        pytest.param(
            "claude-code", "MiniMax-M2",
            ["MINIMAX_API_KEY", CLAUDE_CODE_OAUTH_TOKEN], [],
            ["MINIMAX_API_KEY"], [CLAUDE_CODE_OAUTH_TOKEN], [],
            id="org-scope credential of another provider is stripped",
        ),
        pytest.param(
            "claude-code", "MiniMax-M2",
            ["MINIMAX_API_KEY"], [CLAUDE_CODE_OAUTH_TOKEN],
            ["MINIMAX_API_KEY", CLAUDE_CODE_OAUTH_TOKEN], [], [CLAUDE_CODE_OAUTH_TOKEN],
            id="workspace-scope credential of another provider is kept with a warning",
        ),
        pytest.param(
            "codex", "gpt-5.5",
            ["ANTHROPIC_API_KEY", "GEMINI_API_KEY"], ["OPENAI_API_KEY"],
            ["OPENAI_API_KEY"], ["ANTHROPIC_API_KEY", "GEMINI_API_KEY"], [],
            id="the provider's workspace credential, other org credentials stripped",
        ),
        pytest.param(
            "google-adk", "gemini-2.5-pro",
            ["GEMINI_API_KEY", "GOOGLE_API_KEY"], [],
            ["GEMINI_API_KEY", "GOOGLE_API_KEY"], [], [],
            id="every auth env of the provider is kept",
        ),
        pytest.param(
            "claude-code", "opus",
            [CLAUDE_CODE_OAUTH_TOKEN, "OPENAI_API_KEY"], [],
            [CLAUDE_CODE_OAUTH_TOKEN], ["OPENAI_API_KEY"], [],
            id="alias derived through the credential present",
        ),
    ],
)  # fmt: skip
def test_byok_with_a_derived_provider(
    runtime: str,
    model: str,
    org: list[str],
    workspace: list[str],
    kept: list[str],
    stripped: list[str],
    foreign: list[str],
) -> None:
    result = provision(
        runtime=runtime, model=model, org=secrets(*org), workspace=secrets(*workspace)
    )
    assert (result.decision.mode, result.decision.source) == (
        BillingMode.BYOK,
        DecisionSource.DERIVED_PROVIDER,
    )
    assert sorted(CREDENTIALS & set(result.env)) == sorted(kept)
    assert list(result.stripped) == sorted(stripped)
    assert list(result.foreign_credentials_kept) == foreign


def test_each_foreign_credential_kept_has_a_warning_naming_it_and_the_provider() -> None:
    result = provision(
        model="MiniMax-M2",
        org=secrets("MINIMAX_API_KEY"),
        workspace=secrets(CLAUDE_CODE_OAUTH_TOKEN, "OPENAI_API_KEY"),
    )
    assert len(result.warnings) == 2
    for name, warning in zip(result.foreign_credentials_kept, result.warnings, strict=True):
        assert name in warning
        assert "minimax" in warning


@pytest.mark.parametrize(
    ("override", "org_default", "proxy", "model"),
    [
        pytest.param("byok", None, PROXY, "MiniMax-M2", id="workspace override"),
        pytest.param(None, "byok", PROXY, "MiniMax-M2", id="org default"),
        pytest.param(None, None, NO_PROXY, "totally-made-up", id="self-host default"),
        pytest.param(None, None, NO_PROXY, "deepseek", id="raw model that spells a provider id"),
    ],
)
def test_byok_without_a_derived_provider_keeps_every_credential(
    override: str | None, org_default: str | None, proxy: ProxySettings, model: str
) -> None:
    org = secrets("ANTHROPIC_API_KEY", "OPENAI_API_KEY")
    workspace = secrets(CLAUDE_CODE_OAUTH_TOKEN)
    result = provision(
        override=override, org_default=org_default, proxy=proxy, model=model, org=org,
        workspace=workspace,
    )  # fmt: skip
    assert result.decision.mode is BillingMode.BYOK
    assert CREDENTIALS & set(result.env) == {*org, *workspace}
    assert result.foreign_credentials_kept == ()


@pytest.mark.parametrize(
    "tenant",
    [
        pytest.param({"MOLECULE_LLM_BASE_URL": "https://evil"}, id="MOLECULE_LLM_BASE_URL"),
        pytest.param({"MOLECULE_LLM_USAGE_TOKEN": "t"}, id="MOLECULE_LLM_USAGE_TOKEN"),
        pytest.param(
            {"MOLECULE_LLM_ANTHROPIC_BASE_URL": "u"}, id="MOLECULE_LLM_ANTHROPIC_BASE_URL"
        ),
        pytest.param({"MOLECULE_LLM_USAGE_URL": "u"}, id="MOLECULE_LLM_USAGE_URL"),
        pytest.param({"ANTHROPIC_CUSTOM_HEADERS": HEADER}, id="ANTHROPIC_CUSTOM_HEADERS"),
    ],
)
def test_byok_carries_no_proxy_env(tenant: dict[str, str]) -> None:
    result = provision(model="MiniMax-M2", org=secrets("MINIMAX_API_KEY"), workspace=tenant)
    assert not set(tenant) & set(result.env)
    assert list(result.stripped) == sorted(tenant)


def test_byok_keeps_the_tenants_own_vendor_endpoint() -> None:
    # Kimi on claude-code is reached through the tenant's own ANTHROPIC_BASE_URL.
    endpoint = {"ANTHROPIC_BASE_URL": "https://api.moonshot.ai/anthropic"}
    result = provision(model="kimi-for-coding", workspace={**secrets("KIMI_API_KEY"), **endpoint})
    assert result.env["ANTHROPIC_BASE_URL"] == endpoint["ANTHROPIC_BASE_URL"]


def test_byok_strips_a_blank_credential_without_a_warning() -> None:
    result = provision(
        model="MiniMax-M2", org=secrets("MINIMAX_API_KEY"), workspace={"OPENAI_API_KEY": " "}
    )
    assert "OPENAI_API_KEY" not in result.env
    assert result.foreign_credentials_kept == ()


@pytest.mark.parametrize(
    ("runtime", "model", "org", "workspace", "provider", "satisfying_env"),
    [
        pytest.param(
            "claude-code", "MiniMax-M2", {}, {}, "minimax",
            ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "MINIMAX_API_KEY"),
            id="no credential at all",
        ),
        pytest.param(
            "codex", "gpt-5.5", secrets("ANTHROPIC_API_KEY"), {}, "openai-subscription",
            ("CODEX_AUTH_JSON", "CODEX_CHATGPT_AUTH_JSON"),
            id="only another provider's org credential",
        ),
        pytest.param(
            "claude-code", "kimi-k2.5", {}, secrets("OPENAI_API_KEY"), "kimi-coding",
            ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "KIMI_API_KEY"),
            id="only another provider's workspace credential",
        ),
        pytest.param(
            "claude-code", "deepseek-chat", {"DEEPSEEK_API_KEY": "  "}, {}, "deepseek",
            ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "DEEPSEEK_API_KEY"),
            id="a blank credential does not count",
        ),
    ],
)  # fmt: skip
def test_byok_without_the_derived_providers_credential_fails(
    runtime: str,
    model: str,
    org: dict[str, str],
    workspace: dict[str, str],
    provider: str,
    satisfying_env: tuple[str, ...],
) -> None:
    with pytest.raises(MissingByokCredentialError) as caught:
        provision(runtime=runtime, model=model, org=org, workspace=workspace)
    assert (caught.value.provider, caught.value.satisfying_env) == (provider, satisfying_env)


def test_byok_without_any_credential_and_no_derived_provider_names_every_vendor_auth_env() -> None:
    with pytest.raises(MissingByokCredentialError) as caught:
        provision(override="byok", workspace={"ANTHROPIC_API_KEY": ""})
    assert caught.value.provider is None
    assert caught.value.satisfying_env == tuple(sorted(REGISTRY.vendor_auth_env))
    assert "MOLECULE_LLM_USAGE_TOKEN" not in caught.value.satisfying_env


def test_missing_byok_credential_message_names_the_provider_and_the_env_names() -> None:
    with pytest.raises(MissingByokCredentialError) as caught:
        provision(model="kimi-for-coding")
    assert "'kimi-coding'" in caught.value.message
    assert "ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN, KIMI_API_KEY" in caught.value.message


# --- disabled --------------------------------------------------------------------------------


@pytest.mark.parametrize("proxy", [PROXY, NO_PROXY], ids=["proxy configured", "no proxy"])
def test_disabled_strips_every_credential_and_all_proxy_env_without_error(
    proxy: ProxySettings,
) -> None:
    tenant = secrets(*CREDENTIALS, *PROXY_NAMES)
    result = provision(override="disabled", workspace=tenant, proxy=proxy)
    assert not (CREDENTIALS | PROXY_NAMES) & set(result.env)
    assert set(result.stripped) == set(tenant)


# --- Input checks ----------------------------------------------------------------------------


def build_for_workspace(workspace_id: str) -> ProvisionEnv:
    merged = merge_secret_scopes({}, {})
    return build_provision_env(
        decide(merged, override="platform_managed"),
        workspace_id=workspace_id,
        runtime="claude-code",
        model="opus",
        merged_env=merged,
        proxy=PROXY,
        registry=REGISTRY,
    )


@pytest.mark.parametrize("workspace_id", ["", "ws 1", "ws\r\nX-Evil: 1", "ws\x00"])
def test_a_workspace_id_unfit_for_the_attribution_header_is_rejected(workspace_id: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        build_for_workspace(workspace_id)
    assert caught.value.field == "workspace_id"


def test_a_workspace_id_other_than_the_decisions_is_rejected() -> None:
    with pytest.raises(InvalidInputError) as caught:
        build_for_workspace("another-workspace")
    assert caught.value.field == "workspace_id"


def test_the_provisioned_env_is_read_only() -> None:
    result = provision(override="platform_managed")
    with pytest.raises(TypeError):
        result.env["OPENAI_API_KEY"] = "x"  # type: ignore[index]


# --- Errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code", "exit_code"),
    [
        (MissingModelError(WORKSPACE_ID), "MISSING_MODEL", 3),
        (MissingPlatformProxyError(("base URL",)), "MISSING_PLATFORM_PROXY", 4),
        (MissingByokCredentialError("openai", ("OPENAI_API_KEY",)), "MISSING_BYOK_CREDENTIAL", 5),
    ],
)
def test_each_provision_error_has_its_code_and_exit_code(
    error: ProvisionError, code: str, exit_code: int
) -> None:
    assert (error.code, error.exit_code, error.to_dict()["code"]) == (code, exit_code, code)


def test_provision_exit_codes_are_distinct() -> None:
    classes: list[type[ProvisionError]] = [
        ProvisionError,
        MissingModelError,
        MissingPlatformProxyError,
        MissingByokCredentialError,
    ]
    assert len({cls.exit_code for cls in classes}) == len(classes)


def test_missing_model_message_names_the_workspace_and_the_env_names() -> None:
    message = MissingModelError(WORKSPACE_ID).message
    assert all(part in message for part in (WORKSPACE_ID, "MOLECULE_MODEL", "MODEL"))


# --- Secrets never shown ---------------------------------------------------------------------


def test_a_secret_value_never_shows_in_its_repr_or_str() -> None:
    secret = SecretValue(key("X"), SecretScope.ORG)
    assert SENTINEL not in repr(secret)
    assert SENTINEL not in str(secret)
    assert SENTINEL not in f"{secret}"


def test_proxy_settings_never_show_the_usage_token() -> None:
    assert SENTINEL not in repr(PROXY)
    assert SENTINEL not in str(PROXY)


def test_proxy_settings_repr_hides_credentials_inside_urls() -> None:
    proxy = ProxySettings(base_url=f"https://u:{SENTINEL}@proxy.example/v1?key={SENTINEL}")
    assert SENTINEL not in repr(proxy)
    assert "proxy.example/v1" in repr(proxy)


@pytest.mark.parametrize(
    ("override", "model", "runtime"),
    [
        ("platform_managed", "opus", "claude-code"),
        ("byok", "MiniMax-M2", "claude-code"),
        (None, "gpt-5.5", "codex"),
        ("disabled", "opus", "claude-code"),
    ],
)
def test_values_never_show_outside_the_env(override: str | None, model: str, runtime: str) -> None:
    tenant = secrets(*CREDENTIALS, "ANTHROPIC_BASE_URL", "MOLECULE_LLM_USAGE_TOKEN")
    result = provision(
        override=override, model=model, runtime=runtime, org=tenant, workspace=tenant
    )
    for shown in _everything_but_the_env(result):
        assert SENTINEL not in shown


def _everything_but_the_env(result: ProvisionEnv) -> list[str]:
    return [
        repr(result),
        str(result),
        json.dumps(result.public_summary()),
        repr(result.decision),
        json.dumps(result.decision.to_dict()),
        *result.warnings,
    ]


def test_a_provisioned_env_does_carry_the_values() -> None:
    # The counterpart of the sentinel tests: the values do reach the container.
    result = provision(model="MiniMax-M2", org=secrets("MINIMAX_API_KEY"))
    assert result.env["MINIMAX_API_KEY"] == key("MINIMAX_API_KEY")


@pytest.mark.parametrize(
    ("override", "model", "proxy"),
    [
        ("platform_managed", "opus", NO_PROXY),
        ("platform_managed", "opus", ProxySettings(usage_token=USAGE_TOKEN)),
        (None, "MiniMax-M2", PROXY),
        ("byok", "opus", PROXY),
    ],
)
def test_error_messages_never_show_values(
    override: str | None, model: str, proxy: ProxySettings
) -> None:
    tenant = {name: key(name) for name in ("ANTHROPIC_BASE_URL", "MOLECULE_LLM_BASE_URL")}
    with pytest.raises(ProvisionError) as caught:
        provision(override=override, model=model, proxy=proxy, workspace=tenant)
    assert SENTINEL not in caught.value.message
    assert SENTINEL not in str(caught.value)
    assert SENTINEL not in repr(caught.value)


def test_public_summary_names_everything_but_values() -> None:
    result = provision(
        model="MiniMax-M2",
        org=secrets("MINIMAX_API_KEY", "OPENAI_API_KEY"),
        workspace=secrets(CLAUDE_CODE_OAUTH_TOKEN),
    )
    summary = result.public_summary()
    assert summary["mode"] == "byok"
    assert summary["source"] == "derived_provider"
    assert summary["provider"] == "minimax"
    assert summary["env_names"] == sorted(result.env)
    assert summary["stripped"] == ["OPENAI_API_KEY"]
    assert summary["foreign_credentials_kept"] == [CLAUDE_CODE_OAUTH_TOKEN]
    assert summary["warnings"] == list(result.warnings)


# --- Invariants ------------------------------------------------------------------------------

_INTERESTING_NAMES = sorted(
    CREDENTIALS
    | PROXY_NAMES
    | set(BILLING_EXPORTS)
    | {"OPENAI_API_KEY", "MODEL", "MOLECULE_MODEL", "PATH", "MOLECULE_LLM_OTHER"}
)
env_names = st.one_of(
    st.sampled_from(_INTERESTING_NAMES), st.from_regex(r"[A-Z_][A-Z0-9_]{0,15}", fullmatch=True)
)
# Values that carry the sentinel, blank ones, and arbitrary text.
secret_values = st.one_of(
    st.builds(lambda suffix: f"sk-{SENTINEL}-{suffix}", st.text(max_size=8)),
    st.sampled_from(["", " ", "\t"]),
    st.text(max_size=12),
)
scoped_env = st.dictionaries(env_names, secret_values, max_size=10)
runtimes = st.sampled_from([*REGISTRY.runtimes, "not-in-the-registry"])
vendor_models = st.sampled_from(
    [
        "gpt-5.5",
        "claude-opus-4-7",
        "kimi-for-coding",
        "gemini-2.5-pro",
        "MiniMax-M2",
        "deepseek-chat",
        "opus",
        "sonnet",
    ]
)


@settings(deadline=None)
@given(org=scoped_env, workspace=scoped_env, runtime=runtimes)
def test_platform_managed_never_keeps_a_tenant_credential_or_proxy_setting(
    org: dict[str, str], workspace: dict[str, str], runtime: str
) -> None:
    result = provision(override="platform_managed", org=org, workspace=workspace, runtime=runtime)
    platform_values = {
        PROXY.base_url,
        PROXY.anthropic_base_url,
        PROXY.usage_url,
        USAGE_TOKEN,
        HEADER,
    }
    for name in (CREDENTIALS | PROXY_NAMES) & set(result.env):
        assert result.env[name] in platform_values, name


# Each vendor model with one credential of the provider it derives to.
models_with_own_credential = st.sampled_from(
    [
        ("gpt-5.5", "OPENAI_API_KEY"),
        ("claude-opus-4-7", "ANTHROPIC_API_KEY"),
        ("claude-sonnet-4-6", "ANTHROPIC_AUTH_TOKEN"),
        ("kimi-for-coding", "KIMI_API_KEY"),
        ("kimi-k2.5", "KIMI_API_KEY"),
        ("gemini-2.5-pro", "GEMINI_API_KEY"),
        ("MiniMax-M2", "MINIMAX_API_KEY"),
        ("deepseek-chat", "DEEPSEEK_API_KEY"),
        ("opus", CLAUDE_CODE_OAUTH_TOKEN),
    ]
)


@settings(deadline=None)
@given(
    org=scoped_env,
    workspace=scoped_env,
    runtime=st.sampled_from(sorted(REGISTRY.runtimes)),
    model_and_credential=models_with_own_credential,
    own_scope=st.sampled_from(SecretScope),
)
def test_byok_never_inherits_an_org_credential_or_endpoint_of_another_provider(
    org: dict[str, str],
    workspace: dict[str, str],
    runtime: str,
    model_and_credential: tuple[str, str],
    own_scope: SecretScope,
) -> None:
    model, own_credential = model_and_credential
    merged = merge_secret_scopes(org, workspace)
    merged[own_credential] = SecretValue(key(own_credential), own_scope)
    decision = decide(merged, runtime=runtime, model=model)
    # Ties the random credentials leave ambiguous, and aliases of one runtime, decide elsewhere.
    assume(decision.source is DecisionSource.DERIVED_PROVIDER)
    assert decision.provider is not None
    provider = REGISTRY.providers[decision.provider]
    own = provider.auth_env | provider.endpoint_env
    result = build_provision_env(
        decision,
        workspace_id=WORKSPACE_ID,
        runtime=runtime,
        model=model,
        merged_env=merged,
        proxy=PROXY,
        registry=REGISTRY,
    )
    foreign_in_env = ((CREDENTIALS | ENDPOINTS) - own) & set(result.env)
    assert all(merged[name].scope is SecretScope.WORKSPACE for name in foreign_in_env)
    assert foreign_in_env == set(result.foreign_credentials_kept)
    assert result.env[own_credential] == key(own_credential)


@settings(deadline=None)
@given(
    org=scoped_env,
    workspace=scoped_env,
    runtime=runtimes,
    override=st.sampled_from([None, "platform_managed", "byok", "disabled"]),
    model=vendor_models,
)
def test_no_value_ever_shows_outside_the_env(
    org: dict[str, str],
    workspace: dict[str, str],
    runtime: str,
    override: str | None,
    model: str,
) -> None:
    try:
        result = provision(
            override=override, org=org, workspace=workspace, runtime=runtime, model=model
        )
    except ProvisionError as error:
        shown = [repr(error), str(error), json.dumps(error.to_dict())]
    else:
        shown = _everything_but_the_env(result)
    assert not [text for text in shown if SENTINEL in text]


@settings(deadline=None)
@given(
    org=scoped_env,
    workspace=scoped_env,
    runtime=runtimes,
    override=st.sampled_from([None, "platform_managed", "byok", "disabled"]),
    model=vendor_models,
)
def test_the_decision_and_the_model_are_always_exported(
    org: dict[str, str],
    workspace: dict[str, str],
    runtime: str,
    override: str | None,
    model: str,
) -> None:
    try:
        result = provision(
            override=override, org=org, workspace=workspace, runtime=runtime, model=model
        )
    except MissingByokCredentialError:
        return
    mode = result.decision.mode.value
    assert result.env["MOLECULE_LLM_BILLING_MODE"] == mode
    assert result.env["MOLECULE_LLM_BILLING_MODE_RESOLVED"] == mode
    assert result.env["MOLECULE_LLM_BILLING_SOURCE"] == result.decision.source.value
    assert result.env["MOLECULE_MODEL"] == result.env["MODEL"] == model
