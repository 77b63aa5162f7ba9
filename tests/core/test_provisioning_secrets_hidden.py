"""Secret values in provisioning (spec §4) never show outside ``ProvisionEnv.env``: not in a
secret's or the proxy settings' repr (URL credentials included), not in a provision's repr,
summary, decision or warnings, not in an error message; the env itself does carry them, and the
public summary names everything but values.

Helpers: ``tests/core/provisioning_helpers.py``.
"""

from __future__ import annotations

import pytest
from tests.core.provisioning_helpers import (
    CREDENTIALS,
    NO_PROXY,
    PROXY,
    SENTINEL,
    USAGE_TOKEN,
    everything_but_the_env,
    key,
    provision,
    secrets,
)

from llmbilling.core.provisioning import CLAUDE_CODE_OAUTH_TOKEN, ProxySettings
from llmbilling.core.secrets import SecretScope, SecretValue
from llmbilling.errors import ProvisionError

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
    for shown in everything_but_the_env(result):
        assert SENTINEL not in shown


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
