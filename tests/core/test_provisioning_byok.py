"""The provisioning env (spec §4) of ``byok``: with a derived provider, its credentials kept,
other providers' org credentials stripped and workspace ones kept with a warning; without one,
every credential kept; never any proxy env; the tenant's own vendor endpoint kept; blank
credentials stripped; and a missing credential named with the provider and the env names that
would satisfy it.

Helpers: ``tests/core/provisioning_helpers.py``.
"""

from __future__ import annotations

import pytest
from tests.core.provisioning_helpers import (
    CREDENTIALS,
    HEADER,
    NO_PROXY,
    PROXY,
    REGISTRY,
    provision,
    secrets,
)

from llmbilling.core.modes import BillingMode, DecisionSource
from llmbilling.core.provisioning import CLAUDE_CODE_OAUTH_TOKEN, ProxySettings
from llmbilling.errors import MissingByokCredentialError

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
