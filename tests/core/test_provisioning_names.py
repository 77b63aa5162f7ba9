"""Credential and endpoint names are registry data (spec §4): the platform and disabled paths
strip every name any provider declares (a superset of the original's 23-name strip list), and
byok's scope-aware strip keeps exactly the decided provider's. A sentinel value sits under
every name, at org and at workspace scope, on every kind of runtime."""

from __future__ import annotations

import pytest
from tests.core.reference.seed_registry import PLATFORM_STRIP_LIST

from llmbilling.config.registry import built_in_registry
from llmbilling.core.decision import ResolutionInput
from llmbilling.core.provisioning import ProvisionEnv, ProxySettings, build_provision_env
from llmbilling.core.resolve import resolve_billing_mode
from llmbilling.core.secrets import SecretScope, merge_secret_scopes

REGISTRY = built_in_registry()
WORKSPACE_ID = "0b7e5c1a-2f3d-4e6a-9c8b-1d2e3f4a5b6c"
SENTINEL = "SENTINEL-7f3a"
PROXY = ProxySettings(base_url="https://proxy.example/v1", usage_token="usage-token")
DECLARED = REGISTRY.all_auth_env | REGISTRY.all_endpoint_env
EVERY_NAME = sorted(DECLARED | PLATFORM_STRIP_LIST)
# The platform's own namespace never reaches a container from a tenant's secrets.
TENANT_NAMES = {name for name in EVERY_NAME if not name.startswith("MOLECULE_LLM_")}

RUNTIME_KINDS = [
    pytest.param("claude-code", id="anthropic-native"),
    pytest.param("hermes", id="openai-compatible"),
    pytest.param("no-such-runtime", id="not-in-the-registry"),
]
SCOPES = [
    pytest.param(SecretScope.ORG, id="org-scope"),
    pytest.param(SecretScope.WORKSPACE, id="workspace-scope"),
]

# A model per vendor provider and a runtime that lists it: byok derives that provider.
BYOK_CASES = [
    pytest.param("claude-code", "claude-opus-4-7", "anthropic-api", id="anthropic-api"),
    pytest.param("claude-code", "kimi-for-coding", "kimi-coding", id="kimi-coding"),
    pytest.param("claude-code", "glm-4.6", "zai", id="zai"),
    pytest.param("codex", "gpt-5.5", "openai-subscription", id="openai-subscription"),
    pytest.param("hermes", "custom:my-model", "custom", id="custom"),
    pytest.param("hermes", "openrouter/x", "openrouter", id="openrouter"),
    pytest.param("hermes", "openai/gpt-5.5", "byok-openai", id="byok-openai"),
    pytest.param("hermes", "minimax-cn:m2", "minimax-cn", id="minimax-cn"),
    pytest.param("openclaw", "groq:llama", "groq", id="groq"),
    pytest.param("google-adk", "gemini-2.5-pro", "google", id="google"),
]


def sentinel(name: str) -> str:
    return f"{SENTINEL}-{name}"


def provision(
    runtime: str, model: str, scope: SecretScope, *, override: str | None = None
) -> ProvisionEnv:
    values = {name: sentinel(name) for name in EVERY_NAME}
    merged = merge_secret_scopes(
        values if scope is SecretScope.ORG else {}, values if scope is SecretScope.WORKSPACE else {}
    )
    decision = resolve_billing_mode(
        ResolutionInput(
            workspace_id=WORKSPACE_ID,
            override=override,
            runtime=runtime,
            model=model,
            auth_env=frozenset(merged),
            proxy_configured=True,
        ),
        REGISTRY,
    )
    return build_provision_env(
        decision,
        workspace_id=WORKSPACE_ID,
        runtime=runtime,
        model=model,
        merged_env=merged,
        proxy=PROXY,
        registry=REGISTRY,
    )


def tenant_names_in(result: ProvisionEnv) -> set[str]:
    return {name for name, value in result.env.items() if value.startswith(SENTINEL)}


def test_the_declared_names_cover_the_originals_strip_list() -> None:
    assert PLATFORM_STRIP_LIST <= DECLARED
    assert {"OPENAI_BASE_URL", "HERMES_CUSTOM_BASE_URL"} <= REGISTRY.all_endpoint_env


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("runtime", RUNTIME_KINDS)
@pytest.mark.parametrize("override", ["platform_managed", "disabled"])
def test_platform_and_disabled_strip_every_declared_name_of_either_scope(
    runtime: str, scope: SecretScope, override: str
) -> None:
    result = provision(runtime, "claude-opus-4-7", scope, override=override)
    assert tenant_names_in(result) == set()
    assert set(result.stripped) == set(EVERY_NAME)


@pytest.mark.parametrize(("runtime", "model", "provider"), BYOK_CASES)
def test_byok_keeps_only_the_decided_providers_org_scope_names(
    runtime: str, model: str, provider: str
) -> None:
    result = provision(runtime, model, SecretScope.ORG)
    own = REGISTRY.providers[provider]
    assert result.decision.provider == provider
    assert tenant_names_in(result) == set(own.auth_env | own.endpoint_env)
    assert result.foreign_credentials_kept == ()


@pytest.mark.parametrize(("runtime", "model", "provider"), BYOK_CASES)
def test_byok_keeps_workspace_scope_names_of_other_providers_and_names_them(
    runtime: str, model: str, provider: str
) -> None:
    result = provision(runtime, model, SecretScope.WORKSPACE)
    own = REGISTRY.providers[provider]
    assert tenant_names_in(result) == TENANT_NAMES
    assert set(result.foreign_credentials_kept) == TENANT_NAMES - own.auth_env - own.endpoint_env


@pytest.mark.parametrize("scope", SCOPES)
def test_byok_without_a_derived_provider_keeps_every_name(scope: SecretScope) -> None:
    result = provision("no-such-runtime", "claude-opus-4-7", scope, override="byok")
    assert tenant_names_in(result) == TENANT_NAMES
