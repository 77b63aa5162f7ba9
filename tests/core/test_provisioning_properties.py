"""Properties of the provisioning env (spec §4), over random org and workspace secrets
(sentinel, blank and arbitrary values under interesting and random names), runtimes, overrides
and vendor models: ``platform_managed`` never keeps a tenant credential or proxy setting;
``byok`` never inherits another provider's org credential or endpoint; no value ever shows
outside the env; the decision and the model are always exported.

Helpers: ``tests/core/provisioning_helpers.py``.
"""

from __future__ import annotations

import json

from hypothesis import assume, given, settings
from hypothesis import strategies as st
from tests.core.provisioning_helpers import (
    BILLING_EXPORTS,
    CREDENTIALS,
    ENDPOINTS,
    HEADER,
    PROXY,
    PROXY_NAMES,
    REGISTRY,
    SENTINEL,
    USAGE_TOKEN,
    WORKSPACE_ID,
    decide,
    everything_but_the_env,
    key,
    provision,
)

from llmbilling.core.modes import DecisionSource
from llmbilling.core.provisioning import CLAUDE_CODE_OAUTH_TOKEN, build_provision_env
from llmbilling.core.secrets import SecretScope, SecretValue, merge_secret_scopes
from llmbilling.errors import MissingByokCredentialError, ProvisionError

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
    # Ties the random credentials leave ambiguous, aliases of one runtime, and exact ids two
    # providers list (the random credentials may select the other one) decide elsewhere.
    assume(decision.source is DecisionSource.DERIVED_PROVIDER)
    assert decision.provider is not None
    provider = REGISTRY.providers[decision.provider]
    assume(own_credential in provider.auth_env)
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
        shown = everything_but_the_env(result)
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
