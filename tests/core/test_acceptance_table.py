"""The acceptance table: spec §2 and §3, one row per situation.

Columns: override, org raw, runtime, model, auth env, deployment → mode, source, provider,
derivation outcome (and the error code, when one travels beside the decision). Expected values
are wire strings, compared against ``BillingDecision.to_dict()``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from llmbilling.core.decision import OverrideReadFailure, ResolutionInput
from llmbilling.core.registry import CompiledRegistry
from llmbilling.core.resolve import resolve_billing_mode

WORKSPACE = "6f1c2b1e-8d7a-4c4e-9a55-0d3b2f7e9c10"
NO_WORKSPACE = ""  # the pre-provision/templating path
READ_FAILED = OverrideReadFailure("database is unavailable")

SAAS = True  # metering proxy configured
SELF_HOST = False

BUILT_IN = "built-in"
NO_REGISTRY = "unavailable"
SPECIFICITY = "specificity"  # see SPECIFICITY_PROVIDERS in conftest.py; runtime `rt`

OAUTH = "CLAUDE_CODE_OAUTH_TOKEN"
API_KEY = "ANTHROPIC_API_KEY"

PM = "platform_managed"
BYOK = "byok"
DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class Row:
    override: str | OverrideReadFailure | None
    org_raw: str | None
    runtime: str | None
    model: str | None
    auth_env: tuple[str, ...]
    proxy_configured: bool
    mode: str
    source: str
    provider: str | None
    derivation: str
    error: str | None = None
    workspace_id: str | None = WORKSPACE
    registry: str = BUILT_IN


def row(
    case_id: str,
    override: str | OverrideReadFailure | None,
    org_raw: str | None,
    runtime: str | None,
    model: str | None,
    auth_env: tuple[str, ...],
    proxy_configured: bool,
    expected: tuple[str, str, str | None, str],
    *,
    error: str | None = None,
    workspace_id: str | None = WORKSPACE,
    registry: str = BUILT_IN,
) -> object:
    mode, source, provider, derivation = expected
    return pytest.param(
        Row(
            override,
            org_raw,
            runtime,
            model,
            auth_env,
            proxy_configured,
            mode,
            source,
            provider,
            derivation,
            error,
            workspace_id,
            registry,
        ),
        id=case_id,
    )


# fmt: off
SPEC_EXAMPLES = [
    row("spec-1-org-platform-managed-beats-vendor-model",
        None, "platform_managed", "claude-code", "kimi-for-coding", (), SAAS,
        (PM, "org_default", None, "not_attempted")),
    row("spec-2-vendor-model-derives-byok",
        None, None, "claude-code", "kimi-for-coding", (), SAAS,
        (BYOK, "derived_provider", "kimi-coding", "ok")),
    row("spec-3-override-byok-beats-org-and-platform-model",
        "byok", "platform_managed", "claude-code", "platform/claude-opus-4-7", (), SAAS,
        (BYOK, "workspace_override", None, "not_attempted")),
    row("spec-4-org-default-normalized",
        None, "  BYOK ", "codex", "openai/gpt-5.4", (), SAAS,
        (BYOK, "org_default", None, "not_attempted")),
    row("spec-5-garbled-org-default-ignored",
        None, "byokk", "codex", "gpt-5.5", (), SAAS,
        (BYOK, "derived_provider", "openai-subscription", "ok")),
    row("spec-6-no-model-saas-default",
        None, None, "claude-code", None, (), SAAS,
        (PM, "derived_default", None, "no_model")),
    row("spec-7-unregistered-model-self-host-default",
        None, None, "claude-code", "totally-made-up", (), SELF_HOST,
        (BYOK, "derived_default", "totally-made-up", "unregistered_model")),
    row("spec-8-read-failure-constant-fallback",
        READ_FAILED, "byok", "claude-code", "gpt-5.5", (), SAAS,
        (PM, "constant_fallback", None, "not_attempted"), error="OVERRIDE_READ_FAILED"),
]

OVERRIDE_ROWS = [
    row("override-platform-managed-beats-org-byok-and-vendor-model",
        "platform_managed", "byok", "codex", "gpt-5.5", (), SAAS,
        (PM, "workspace_override", None, "not_attempted")),
    row("override-disabled",
        "disabled", "platform_managed", "codex", "gpt-5.5", (), SAAS,
        (DISABLED, "workspace_override", None, "not_attempted")),
    row("override-byok-self-host",
        "byok", None, "claude-code", "platform/x", (), SELF_HOST,
        (BYOK, "workspace_override", None, "not_attempted")),
    row("override-platform-managed-self-host",
        "platform_managed", None, "codex", "gpt-5.5", (OAUTH,), SELF_HOST,
        (PM, "workspace_override", None, "not_attempted")),
    row("override-null-inherits",
        None, None, "codex", "gpt-5.5", (), SAAS,
        (BYOK, "derived_provider", "openai-subscription", "ok")),
    row("override-garbled-byokk-ignored",
        "byokk", None, "codex", "gpt-5.5", (), SAAS,
        (BYOK, "derived_provider", "openai-subscription", "ok")),
    row("override-trailing-space-ignored",
        "BYOK ", "platform_managed", "codex", "gpt-5.5", (), SAAS,
        (PM, "org_default", None, "not_attempted")),
    row("override-wrong-case-ignored",
        "Byok", None, "claude-code", "platform/x", (), SAAS,
        (PM, "derived_provider", "platform", "ok")),
    row("override-empty-string-ignored",
        "", "byok", "claude-code", "platform/x", (), SAAS,
        (BYOK, "org_default", None, "not_attempted")),
    row("override-upper-case-ignored",
        "PLATFORM_MANAGED", None, "claude-code", None, (), SELF_HOST,
        (BYOK, "derived_default", None, "no_model")),
    row("override-trailing-newline-ignored",
        "disabled\n", None, "codex", "gpt-5.5", (), SAAS,
        (BYOK, "derived_provider", "openai-subscription", "ok")),
]

EMPTY_WORKSPACE_ROWS = [
    row("empty-workspace-override-ignored-org-default-applies",
        "byok", "platform_managed", "claude-code", "kimi-for-coding", (), SAAS,
        (PM, "org_default", None, "not_attempted"), workspace_id=NO_WORKSPACE),
    row("none-workspace-override-ignored-derivation-applies",
        "byok", None, "claude-code", "platform/x", (), SAAS,
        (PM, "derived_provider", "platform", "ok"), workspace_id=None),
    row("empty-workspace-override-disabled-ignored-default-applies",
        "disabled", None, "claude-code", None, (), SAAS,
        (PM, "derived_default", None, "no_model"), workspace_id=NO_WORKSPACE),
    row("empty-workspace-org-default-normalized",
        None, "BYOK", "claude-code", "platform/x", (), SAAS,
        (BYOK, "org_default", None, "not_attempted"), workspace_id=NO_WORKSPACE),
    row("none-workspace-org-default-platform-managed",
        None, "platform_managed", "codex", "gpt-5.5", (), SAAS,
        (PM, "org_default", None, "not_attempted"), workspace_id=None),
]

READ_FAILURE_ROWS = [
    row("read-failure-self-host-falls-back-to-byok",
        READ_FAILED, None, "claude-code", "platform/x", (), SELF_HOST,
        (BYOK, "constant_fallback", None, "not_attempted"), error="OVERRIDE_READ_FAILED"),
    row("read-failure-org-default-not-consulted",
        READ_FAILED, "platform_managed", "codex", "gpt-5.5", (), SELF_HOST,
        (BYOK, "constant_fallback", None, "not_attempted"), error="OVERRIDE_READ_FAILED"),
    row("read-failure-org-disabled-not-consulted",
        READ_FAILED, "disabled", "codex", "gpt-5.5", (), SAAS,
        (PM, "constant_fallback", None, "not_attempted"), error="OVERRIDE_READ_FAILED"),
    row("read-failure-derivation-not-consulted",
        READ_FAILED, None, "codex", "gpt-5.5", ("OPENAI_API_KEY",), SAAS,
        (PM, "constant_fallback", None, "not_attempted"), error="OVERRIDE_READ_FAILED"),
    row("read-failure-without-registry",
        READ_FAILED, None, "codex", "gpt-5.5", (), SAAS,
        (PM, "constant_fallback", None, "not_attempted"), error="OVERRIDE_READ_FAILED",
        registry=NO_REGISTRY),
    row("read-failure-ignored-on-empty-workspace",
        READ_FAILED, "byok", "codex", "platform/x", (), SAAS,
        (BYOK, "org_default", None, "not_attempted"), workspace_id=NO_WORKSPACE),
    row("read-failure-ignored-on-none-workspace",
        READ_FAILED, None, "codex", "gpt-5.5", (), SAAS,
        (BYOK, "derived_provider", "openai-subscription", "ok"), workspace_id=None),
]

ORG_DEFAULT_ROWS = [
    row("org-padded-upper-case",
        None, "  BYOK ", "claude-code", "platform/x", (), SAAS,
        (BYOK, "org_default", None, "not_attempted")),
    row("org-mixed-case",
        None, "Platform_Managed", "claude-code", "gpt-5.5", (), SAAS,
        (PM, "org_default", None, "not_attempted")),
    row("org-tabs-and-newlines",
        None, "\tbyok\n", "claude-code", "platform/x", (), SAAS,
        (BYOK, "org_default", None, "not_attempted")),
    # Only ASCII white space is trimmed and only ASCII letters lowercased (docs/DECISIONS.md).
    row("org-unicode-spaces-are-not-trimmed-so-not-a-mode",
        None, "\u00a0disabled\u3000", "codex", "gpt-5.5", (), SAAS,
        (BYOK, "derived_provider", "openai-subscription", "ok")),
    row("org-unicode-em-space-is-not-trimmed-so-not-a-mode",
        None, "\u2003PLATFORM_MANAGED\u2003", "codex", "gpt-5.5", (), SELF_HOST,
        (BYOK, "derived_provider", "openai-subscription", "ok")),
    row("org-kelvin-sign-does-not-lowercase-to-k",
        None, "BYO\u212a", "claude-code", "platform/x", (), SAAS,
        (PM, "derived_provider", "platform", "ok")),
    row("org-disabled",
        None, "disabled", "codex", "gpt-5.5", (), SAAS,
        (DISABLED, "org_default", None, "not_attempted")),
    row("org-platform-managed-self-host",
        None, "platform_managed", "codex", "gpt-5.5", (), SELF_HOST,
        (PM, "org_default", None, "not_attempted")),
    row("org-empty-ignored",
        None, "", "claude-code", "kimi-for-coding", (), SAAS,
        (BYOK, "derived_provider", "kimi-coding", "ok")),
    row("org-whitespace-only-ignored",
        None, "  \t\n ", "claude-code", None, (), SELF_HOST,
        (BYOK, "derived_default", None, "no_model")),
    row("org-garbage-ignored",
        None, "garbage", "claude-code", "platform/x", (), SAAS,
        (PM, "derived_provider", "platform", "ok")),
    row("org-mode-with-punctuation-ignored",
        None, "byok!", "codex", "gpt-5.5", (), SAAS,
        (BYOK, "derived_provider", "openai-subscription", "ok")),
    row("org-inner-space-ignored",
        None, "platform managed", "claude-code", None, (), SAAS,
        (PM, "derived_default", None, "no_model")),
    # U+200B is a format character, not white space: trimming leaves it and the text is garbage.
    row("org-zero-width-space-is-not-white-space",
        None, "\u200bbyok", "claude-code", "platform/x", (), SAAS,
        (PM, "derived_provider", "platform", "ok")),
]

DERIVATION_OK_ROWS = [
    row("bare-gpt-on-codex",
        None, None, "codex", "gpt-5.5", (), SAAS,
        (BYOK, "derived_provider", "openai-subscription", "ok")),
    row("bare-claude-on-claude-code",
        None, None, "claude-code", "claude-opus-4-7", (), SAAS,
        (BYOK, "derived_provider", "anthropic-api", "ok")),
    row("bare-claude-with-only-oauth-still-anthropic-api",
        None, None, "claude-code", "claude-opus-4-7", (OAUTH,), SAAS,
        (BYOK, "derived_provider", "anthropic-api", "ok")),
    row("bare-kimi-on-claude-code",
        None, None, "claude-code", "kimi-for-coding", (), SAAS,
        (BYOK, "derived_provider", "kimi-coding", "ok")),
    row("bare-gemini-on-gemini-cli",
        None, None, "gemini-cli", "gemini-2.5-pro", (), SAAS,
        (BYOK, "derived_provider", "google", "ok")),
    row("bare-gemini-on-google-adk",
        None, None, "google-adk", "gemini-2.5-pro", (), SAAS,
        (BYOK, "derived_provider", "google", "ok")),
    row("bare-minimax-as-listed",
        None, None, "claude-code", "MiniMax-M2", (), SAAS,
        (BYOK, "derived_provider", "minimax", "ok")),
    row("bare-minimax-lower-case",
        None, None, "claude-code", "minimax-m2", (), SAAS,
        (BYOK, "derived_provider", "minimax", "ok")),
    row("bare-minimax-upper-case",
        None, None, "langgraph", "MINIMAX-M2", (), SAAS,
        (BYOK, "derived_provider", "minimax", "ok")),
    row("bare-deepseek-on-crewai",
        None, None, "crewai", "deepseek-chat", (), SAAS,
        (BYOK, "derived_provider", "deepseek", "ok")),
    row("bare-model-trimmed",
        None, None, "codex", "  gpt-5.5\t", ("OPENAI_API_KEY",), SAAS,
        (BYOK, "derived_provider", "openai", "ok")),
    row("exact-id-of-two-providers-follows-the-credential",
        None, None, "codex", "gpt-5.5", ("CODEX_AUTH_JSON",), SAAS,
        (BYOK, "derived_provider", "openai-subscription", "ok")),
    row("exact-id-of-two-providers-with-both-credentials-goes-to-the-first-listed",
        None, None, "codex", "gpt-5.5", ("CODEX_AUTH_JSON", "OPENAI_API_KEY"), SAAS,
        (BYOK, "derived_provider", "openai-subscription", "ok")),
    row("vendor-id-on-a-runtime-whose-providers-do-not-name-it",
        None, None, "claude-code", "gpt-5.5", (), SAAS,
        (PM, "derived_default", "gpt-5.5", "unregistered_model")),
    row("anthropic-namespaced-on-hermes-is-own-key",
        None, None, "hermes", "anthropic/claude-opus-4-7", (), SAAS,
        (BYOK, "derived_provider", "byok-anthropic", "ok")),
    row("vendor-model-self-host",
        None, None, "autogen", "deepseek-chat", (), SELF_HOST,
        (BYOK, "derived_provider", "deepseek", "ok")),
    row("prefix-unlisted-gpt",
        None, None, "codex", "gpt-6-preview", (), SAAS,
        (BYOK, "derived_provider", "openai-subscription", "ok")),
    row("prefix-unlisted-claude",
        None, None, "claude-code", "claude-next-thing", (), SAAS,
        (BYOK, "derived_provider", "anthropic-api", "ok")),
    row("prefix-unlisted-kimi",
        None, None, "deepagents", "kimi-k9", (), SAAS,
        (BYOK, "derived_provider", "kimi-coding", "ok")),
]

PLATFORM_NAMESPACE_ROWS = [
    row("platform-slash-on-claude-code",
        None, None, "claude-code", "platform/x", (), SAAS,
        (PM, "derived_provider", "platform", "ok")),
    row("platform-colon-on-codex",
        None, None, "codex", "platform:x", (), SAAS,
        (PM, "derived_provider", "platform", "ok")),
    row("platform-upper-case-on-hermes",
        None, None, "hermes", "PLATFORM/X", (), SAAS,
        (PM, "derived_provider", "platform", "ok")),
    row("platform-slash-on-deepagents",
        None, None, "deepagents", "platform/anything-at-all", (), SAAS,
        (PM, "derived_provider", "platform", "ok")),
    row("anthropic-namespaced-on-claude-code",
        None, None, "claude-code", "anthropic/claude-opus-4-7", (API_KEY,), SAAS,
        (PM, "derived_provider", "platform", "ok")),
    row("openai-namespaced-on-codex",
        None, None, "codex", "openai/gpt-5.4", ("OPENAI_API_KEY",), SAAS,
        (PM, "derived_provider", "platform", "ok")),
    row("openai-namespaced-on-autogen",
        None, None, "autogen", "openai/gpt-5.4", (), SAAS,
        (PM, "derived_provider", "platform", "ok")),
    row("platform-model-self-host-still-platform-managed",
        None, None, "gemini-cli", "platform:gemini", (), SELF_HOST,
        (PM, "derived_provider", "platform", "ok")),
]

ALIAS_ROWS = [
    row("opus-with-oauth-token",
        None, None, "claude-code", "opus", (OAUTH,), SAAS,
        (BYOK, "derived_provider", "anthropic-oauth", "ok")),
    row("opus-with-api-key",
        None, None, "claude-code", "opus", (API_KEY,), SAAS,
        (BYOK, "derived_provider", "anthropic-api", "ok")),
    row("opus-with-both-is-ambiguous",
        None, None, "claude-code", "opus", (OAUTH, API_KEY), SAAS,
        (PM, "derived_default", "opus", "ambiguous_model")),
    row("opus-with-neither-is-ambiguous",
        None, None, "claude-code", "opus", (), SAAS,
        (PM, "derived_default", "opus", "ambiguous_model")),
    row("opus-with-unrelated-env-is-ambiguous",
        None, None, "claude-code", "opus", ("OPENAI_API_KEY",), SAAS,
        (PM, "derived_default", "opus", "ambiguous_model")),
    row("opus-ambiguous-self-host",
        None, None, "claude-code", "Opus", (), SELF_HOST,
        (BYOK, "derived_default", "Opus", "ambiguous_model")),
    row("sonnet-with-oauth-token",
        None, None, "claude-code", "sonnet", (OAUTH,), SAAS,
        (BYOK, "derived_provider", "anthropic-oauth", "ok")),
    row("opus-alias-is-claude-code-only",
        None, None, "codex", "opus", (API_KEY,), SAAS,
        (PM, "derived_default", "opus", "unregistered_model")),
]

SPECIFICITY_ROWS = [
    row("exact-beats-both-prefixes",
        None, None, "rt", "acme-pro-max", (), SAAS,
        (BYOK, "derived_provider", "exacting", "ok"), registry=SPECIFICITY),
    row("longer-prefix-beats-shorter",
        None, None, "rt", "acme-pro-mini", (), SAAS,
        (BYOK, "derived_provider", "narrow", "ok"), registry=SPECIFICITY),
    row("shorter-prefix-when-only-it-matches",
        None, None, "rt", "acme-basic", (), SAAS,
        (BYOK, "derived_provider", "broad", "ok"), registry=SPECIFICITY),
    row("exact-beats-prefix-despite-auth-env",
        None, None, "rt", "ACME-PRO-MAX", ("BROAD_KEY", "NARROW_KEY"), SAAS,
        (BYOK, "derived_provider", "exacting", "ok"), registry=SPECIFICITY),
]

DERIVATION_FAILURE_ROWS = [
    row("unknown-runtime-saas",
        None, None, "nosuchruntime", "gpt-5.5", (), SAAS,
        (PM, "derived_default", "gpt-5.5", "unknown_runtime")),
    row("unknown-runtime-self-host",
        None, None, "nosuchruntime", "gpt-5.5", (), SELF_HOST,
        (BYOK, "derived_default", "gpt-5.5", "unknown_runtime")),
    row("no-runtime-is-unknown",
        None, None, None, "gpt-5.5", (), SAAS,
        (PM, "derived_default", "gpt-5.5", "unknown_runtime")),
    row("wildcard-is-not-a-runtime",
        None, None, "*", "gpt-5.5", (), SAAS,
        (PM, "derived_default", "gpt-5.5", "unknown_runtime")),
    row("no-model-checked-before-runtime",
        None, None, "nosuchruntime", None, (), SAAS,
        (PM, "derived_default", None, "no_model")),
    row("empty-model",
        None, None, "codex", "", (), SAAS,
        (PM, "derived_default", None, "no_model")),
    row("whitespace-model",
        None, None, "codex", "  \t ", (), SELF_HOST,
        (BYOK, "derived_default", None, "no_model")),
    row("unregistered-model-saas",
        None, None, "claude-code", "totally-made-up", (), SAAS,
        (PM, "derived_default", "totally-made-up", "unregistered_model")),
    row("unregistered-model-keeps-raw-text",
        None, None, "codex", " Llama-9 ", (), SAAS,
        (PM, "derived_default", " Llama-9 ", "unregistered_model")),
    row("registry-unavailable-saas",
        None, None, "codex", "gpt-5.5", (), SAAS,
        (PM, "derived_default", "gpt-5.5", "registry_unavailable"),
        error="REGISTRY_UNAVAILABLE", registry=NO_REGISTRY),
    row("registry-unavailable-self-host",
        None, None, "codex", "gpt-5.5", (), SELF_HOST,
        (BYOK, "derived_default", "gpt-5.5", "registry_unavailable"),
        error="REGISTRY_UNAVAILABLE", registry=NO_REGISTRY),
    row("registry-unavailable-without-model",
        None, None, "codex", None, (), SAAS,
        (PM, "derived_default", None, "registry_unavailable"),
        error="REGISTRY_UNAVAILABLE", registry=NO_REGISTRY),
    row("registry-unavailable-irrelevant-when-org-decides",
        None, "byok", "codex", "gpt-5.5", (), SAAS,
        (BYOK, "org_default", None, "not_attempted"), registry=NO_REGISTRY),
    row("registry-unavailable-irrelevant-when-override-decides",
        "disabled", None, "codex", "gpt-5.5", (), SAAS,
        (DISABLED, "workspace_override", None, "not_attempted"), registry=NO_REGISTRY),
]
# fmt: on

TABLE = [
    *SPEC_EXAMPLES,
    *OVERRIDE_ROWS,
    *EMPTY_WORKSPACE_ROWS,
    *READ_FAILURE_ROWS,
    *ORG_DEFAULT_ROWS,
    *DERIVATION_OK_ROWS,
    *PLATFORM_NAMESPACE_ROWS,
    *ALIAS_ROWS,
    *SPECIFICITY_ROWS,
    *DERIVATION_FAILURE_ROWS,
]


@pytest.fixture(scope="module")
def registries(
    builtin: CompiledRegistry, specificity_registry: CompiledRegistry
) -> dict[str, CompiledRegistry | None]:
    return {BUILT_IN: builtin, NO_REGISTRY: None, SPECIFICITY: specificity_registry}


def test_table_has_at_least_sixty_rows() -> None:
    assert len(TABLE) >= 60


@pytest.mark.parametrize("case", TABLE)
def test_acceptance(case: Row, registries: dict[str, CompiledRegistry | None]) -> None:
    inputs = ResolutionInput(
        workspace_id=case.workspace_id,
        override=case.override,
        org_default=case.org_raw,
        runtime=case.runtime,
        model=case.model,
        auth_env=frozenset(case.auth_env),
        proxy_configured=case.proxy_configured,
    )

    record = resolve_billing_mode(inputs, registries[case.registry]).to_dict()

    assert {
        "mode": record["mode"],
        "source": record["source"],
        "provider": record["provider"],
        "derivation": record["derivation"]["outcome"],
        "error": None if record["error"] is None else record["error"]["code"],
    } == {
        "mode": case.mode,
        "source": case.source,
        "provider": case.provider,
        "derivation": case.derivation,
        "error": case.error,
    }


@pytest.mark.parametrize(
    "workspace_id",
    [
        pytest.param(WORKSPACE, id="provisioned-fresh-workspace"),
        pytest.param(NO_WORKSPACE, id="pre-provision-empty-id"),
        pytest.param(None, id="pre-provision-no-id"),
    ],
)
def test_2608_regression_fresh_workspace_org_platform_managed_vendor_model_no_credential_decides_platform_managed_from_org_default(  # noqa: E501
    workspace_id: str | None, builtin: CompiledRegistry
) -> None:
    inputs = ResolutionInput(
        workspace_id=workspace_id,
        override=None,
        org_default="platform_managed",
        runtime="claude-code",
        model="kimi-for-coding",
        auth_env=frozenset(),
        proxy_configured=True,
    )

    decision = resolve_billing_mode(inputs, builtin)

    assert (decision.mode.value, decision.source.value, decision.error) == (
        "platform_managed",
        "org_default",
        None,
    )


@pytest.mark.parametrize("workspace_id", ["", None])
def test_empty_workspace_id_ignores_override_and_still_applies_org_default(
    workspace_id: str | None, builtin: CompiledRegistry
) -> None:
    inputs = ResolutionInput(
        workspace_id=workspace_id,
        override="disabled",
        org_default=" BYOK\n",
        runtime="claude-code",
        model="platform/claude-opus-4-7",
        proxy_configured=True,
    )

    record = resolve_billing_mode(inputs, builtin).to_dict()

    assert (record["mode"], record["source"], record["workspace_override"]) == (
        "byok",
        "org_default",
        None,
    )
    assert record["org_default"] == {"raw": " BYOK\n", "recognized": "byok"}
    assert record["workspace_id"] == workspace_id
