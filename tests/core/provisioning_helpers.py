"""What the provisioning tests share (spec §4): the built-in registry, a workspace, proxy
settings, recognisable secret values, and ``provision`` — resolve, then build the env, the way
the service layer does at provision time. Decisions come from the real resolver over the real
built-in registry."""

from __future__ import annotations

import json
from collections.abc import Mapping

from llmbilling.config.registry import built_in_registry
from llmbilling.core.decision import BillingDecision, OverrideReadFailure, ResolutionInput
from llmbilling.core.provisioning import (
    CLAUDE_CODE_OAUTH_TOKEN,
    ProvisionEnv,
    ProxySettings,
    build_provision_env,
)
from llmbilling.core.resolve import resolve_billing_mode
from llmbilling.core.secrets import SecretValue, merge_secret_scopes

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


def everything_but_the_env(result: ProvisionEnv) -> list[str]:
    """Everything a provision shows (its repr, summary, decision and warnings) but its env."""
    return [
        repr(result),
        str(result),
        json.dumps(result.public_summary()),
        repr(result.decision),
        json.dumps(result.decision.to_dict()),
        *result.warnings,
    ]
