"""The provisioning env (spec §4), what every mode shares: secret scopes (a workspace's value
beats its org's), the proxy settings and when they count as configured, the effective model
(request, stored column, ``MOLECULE_MODEL``, ``MODEL``) and its export, the decision exported
for people inside the container (a tenant cannot fake it), the input checks on the workspace id,
a read-only env, and the typed provision errors with their codes and exit codes.

Helpers: ``tests/core/provisioning_helpers.py``.
"""

from __future__ import annotations

import pytest
from tests.core.provisioning_helpers import (
    BILLING_EXPORTS,
    PROXY,
    REGISTRY,
    WORKSPACE_ID,
    decide,
    provision,
    secrets,
)

from llmbilling.cli.app import exit_code_for
from llmbilling.core.provisioning import (
    ProvisionEnv,
    ProxySettings,
    build_provision_env,
    effective_model,
)
from llmbilling.core.secrets import SecretScope, SecretValue, merge_secret_scopes
from llmbilling.errors import (
    InvalidInputError,
    MissingByokCredentialError,
    MissingModelError,
    MissingPlatformProxyError,
    ProvisionError,
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
        (
            MissingPlatformProxyError({"base URL": ("MOLECULE_LLM_BASE_URL",)}),
            "MISSING_PLATFORM_PROXY",
            4,
        ),
        (MissingByokCredentialError("openai", ("OPENAI_API_KEY",)), "MISSING_BYOK_CREDENTIAL", 5),
    ],
)
def test_each_provision_error_has_its_code_and_exit_code(
    error: ProvisionError, code: str, exit_code: int
) -> None:
    assert (error.code, exit_code_for(error), error.to_dict()["code"]) == (code, exit_code, code)


def test_provision_exit_codes_are_distinct() -> None:
    classes: list[type[ProvisionError]] = [
        ProvisionError,
        MissingModelError,
        MissingPlatformProxyError,
        MissingByokCredentialError,
    ]
    assert len({exit_code_for(cls) for cls in classes}) == len(classes)


def test_missing_model_message_names_the_workspace_and_the_env_names() -> None:
    message = MissingModelError(WORKSPACE_ID).message
    assert all(part in message for part in (WORKSPACE_ID, "MOLECULE_MODEL", "MODEL"))
