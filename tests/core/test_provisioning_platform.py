"""The provisioning env (spec §4) of ``platform_managed``: the runtime pointed at the metering
proxy (its URL, usage token and attribution header, per runtime kind), the proxy settings
exported, every registry credential stripped, a tenant unable to redirect the proxy, regression
#2608, and a missing proxy named setting by setting.

Helpers: ``tests/core/provisioning_helpers.py``.
"""

from __future__ import annotations

import pytest
from tests.core.provisioning_helpers import (
    BARE_PROXY,
    CREDENTIALS,
    EVIL,
    HEADER,
    NO_PROXY,
    PROXY,
    PROXY_EXPORTS,
    USAGE_TOKEN,
    provision,
    secrets,
)

from llmbilling.core.modes import BillingMode, DecisionSource
from llmbilling.core.provisioning import ProxySettings
from llmbilling.errors import MissingPlatformProxyError

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
