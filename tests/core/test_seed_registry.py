"""The built-in registry reproduces the original system's (spec §3, last paragraph), walked from
the reference document itself: every provider with its credential names and pattern, every
runtime's native providers in order, every exact id it lists, and for every pattern arm ids
the pattern accepts and near misses it rejects, on each runtime that lists the provider and on
one that does not. Only the departures the reference names differ."""

from __future__ import annotations

import os
import re

import pytest
from tests.core.reference.seed_registry import (
    DOCUMENT,
    OUR_ID,
    PLATFORM_STRIP_LIST,
    PROVIDERS,
    RUNTIMES,
    SHARED_DOCUMENT,
    matches,
    runtimes_section,
)

from llmbilling.config.registry import built_in_registry
from llmbilling.core.derivation import derive_provider
from llmbilling.core.modes import BillingMode, DerivationOutcome, deployment_default
from llmbilling.core.patterns import expand_pattern
from llmbilling.core.registry import CompiledRegistry, Rule, RuleKind

BUILT_IN = built_in_registry()
ORIGINAL_RUNTIMES = sorted(RUNTIMES)
EXTRA_RUNTIMES = {"gemini-cli", "langgraph", "crewai", "autogen", "deepagents"}

# Credential names of the original's platform strip list that no original provider declared,
# now declared by the provider they belong to (endpoints are declared as endpoint_env).
DECLARED_FOR_THE_STRIP = {
    "arcee": {"ARCEEAI_API_KEY"},
    "custom": {"HERMES_CUSTOM_API_KEY"},
    "moonshot": {"KIMI_CN_API_KEY"},
    "minimax-cn": {"MINIMAX_CN_API_KEY"},
    "nousresearch": {"NOUS_API_KEY"},
    "zai": {"ZAI_API_KEY"},
}
# Departures the reference names: platform:<anything> is the platform too; the claude-code
# aliases follow the credential present (neither: ambiguous).
OUR_PATTERN = {"platform": "^platform[/:]"}
CREDENTIAL_FOLLOWING_ALIASES = {
    ("claude-code", "sonnet"),
    ("claude-code", "opus"),
    ("claude-code", "haiku"),
}


def ours(name: str) -> str:
    return OUR_ID.get(name, name)


def kind(provider: str | None, registry: CompiledRegistry = BUILT_IN) -> str:
    if provider is None:
        return "none"
    return "platform" if registry.providers[provider].platform else "vendor"


def credential_of(name: str) -> frozenset[str]:
    return frozenset({PROVIDERS[name].auth_env[0]})


def listed(runtime: str) -> list[str]:
    return [arm.provider for arm in RUNTIMES[runtime]]


def original_derivation(runtime: str, model: str) -> set[str]:
    """Which original providers claim ``model`` on ``runtime``: exact ids first, then the
    patterns of the providers the runtime lists (the platform's on every runtime)."""
    key = model.strip().lower()
    exact = {
        arm.provider
        for arm in RUNTIMES[runtime]
        for listed_id in arm.exact
        if listed_id.lower() == key
    }
    if exact:
        return exact
    arms = set(listed(runtime)) | {"platform"}
    return {
        name
        for name in arms
        if (re.match(OUR_PATTERN["platform"], key) if name == "platform" else matches(name, key))
    }


# --- the document and its transcription ---------------------------------------------------------


@pytest.mark.skipif(
    not SHARED_DOCUMENT.exists() and not os.environ.get("CI"),
    reason="../shared/reference/ is not beside this checkout (CI always has it)",
)
def test_the_copy_of_the_reference_is_the_shared_document() -> None:
    assert DOCUMENT.read_text(encoding="utf-8") == SHARED_DOCUMENT.read_text(encoding="utf-8")


def test_the_reference_lists_31_providers_beside_the_platform() -> None:
    assert len(PROVIDERS) == 32
    assert [p.name for p in PROVIDERS.values() if p.platform] == ["platform"]


def test_the_runtime_transcription_names_every_id_and_provider_of_the_prose_in_order() -> None:
    prose = runtimes_section()
    ids_in_prose = set(re.findall(r"`([^`]+)`", prose))
    transcribed = {
        listed_id for arms in RUNTIMES.values() for arm in arms for listed_id in arm.exact
    }
    # The prose abbreviates two families ("the same six ids", "the same five with an
    # `anthropic:` prefix"); everything it spells out is transcribed and nothing more.
    assert ids_in_prose - {"anthropic:"} <= transcribed
    assert transcribed - ids_in_prose <= {
        listed_id for listed_id in transcribed if listed_id.startswith("anthropic:claude-")
    }
    for runtime, arms in RUNTIMES.items():
        paragraph = prose.split(f"**{runtime}**", 1)[1].split("\n\n**", 1)[0]
        positions = [paragraph.index(arm.provider) for arm in arms]
        assert positions == sorted(positions), runtime


# --- providers -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_every_reference_provider_is_declared_with_its_credential_names(name: str) -> None:
    provider = BUILT_IN.providers[ours(name)]
    expected = set(PROVIDERS[name].auth_env) | DECLARED_FOR_THE_STRIP.get(name, set())
    assert set(provider.auth_env) == expected
    assert provider.platform == PROVIDERS[name].platform


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_every_reference_provider_keeps_its_pattern(name: str) -> None:
    assert BUILT_IN.providers[ours(name)].pattern == OUR_PATTERN.get(name, PROVIDERS[name].regex)


def test_the_platform_strip_list_is_covered_by_declared_credentials_and_endpoints() -> None:
    declared = BUILT_IN.all_auth_env | BUILT_IN.all_endpoint_env
    assert sorted(PLATFORM_STRIP_LIST - declared) == []
    assert len(PLATFORM_STRIP_LIST) == 23


@pytest.mark.parametrize("name", ["moonshot", "vertex", "ollama"])
def test_providers_no_original_runtime_lists_stay_unlisted(name: str) -> None:
    assert all(name not in runtime.native_providers for runtime in BUILT_IN.runtimes.values())


# --- runtimes --------------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", ORIGINAL_RUNTIMES)
def test_every_runtime_lists_its_native_providers_in_the_reference_order(runtime: str) -> None:
    assert BUILT_IN.runtimes[runtime].native_providers == tuple(ours(p) for p in listed(runtime))


def test_our_extra_runtimes_are_still_declared() -> None:
    assert set(BUILT_IN.runtimes) == set(RUNTIMES) | EXTRA_RUNTIMES


# --- every exact id the reference lists ---------------------------------------------------------

EXACT_IDS = [
    pytest.param(runtime, arm.provider, listed_id, id=f"{runtime}:{arm.provider}:{listed_id}")
    for runtime, arms in RUNTIMES.items()
    for arm in arms
    for listed_id in arm.exact
]


@pytest.mark.parametrize(("runtime", "name", "model"), EXACT_IDS)
def test_every_exact_id_is_a_rule_of_its_provider_on_that_runtime(
    runtime: str, name: str, model: str
) -> None:
    rules = BUILT_IN.rules[runtime][ours(name)]
    assert {Rule(RuleKind.EXACT, model.lower()), Rule(RuleKind.ALIAS, model.lower())} & rules


@pytest.mark.parametrize(("runtime", "name", "model"), EXACT_IDS)
def test_every_exact_id_derives_to_its_provider_with_that_providers_credential(
    runtime: str, name: str, model: str
) -> None:
    result = derive_provider(BUILT_IN, runtime, model, credential_of(name))
    assert result.provider == ours(name), result.detail


@pytest.mark.parametrize(("runtime", "name", "model"), EXACT_IDS)
@pytest.mark.parametrize("proxy_configured", [True, False], ids=["saas", "self-host"])
def test_every_exact_id_keeps_its_billing_mode_without_any_credential(
    runtime: str, name: str, model: str, proxy_configured: bool
) -> None:
    result = derive_provider(BUILT_IN, runtime, model, frozenset())
    if (runtime, model) in CREDENTIAL_FOLLOWING_ALIASES:
        assert result.outcome is DerivationOutcome.AMBIGUOUS_MODEL
        return
    original = BillingMode.PLATFORM_MANAGED if PROVIDERS[name].platform else BillingMode.BYOK
    assert _mode(result.provider, proxy_configured) is original, result.detail


def _mode(provider: str | None, proxy_configured: bool) -> BillingMode:
    if provider is None:
        return deployment_default(proxy_configured)
    return BillingMode.PLATFORM_MANAGED if kind(provider) == "platform" else BillingMode.BYOK


# --- every pattern arm: accepted ids and near misses ----------------------------------------------


def _accepted(name: str) -> list[str]:
    rules = expand_pattern(OUR_PATTERN.get(name, PROVIDERS[name].regex))
    accepted = [*rules.exact, *(prefix + "probe-1" for prefix in rules.prefix)]
    assert all(matches(name, model) for model in accepted if name != "platform")
    return accepted


def _near_misses(name: str) -> list[str]:
    rules = expand_pattern(OUR_PATTERN.get(name, PROVIDERS[name].regex))
    misses = set()
    for text in (*rules.exact, *rules.prefix):
        misses |= {text[:-1] + "probe", text[:-1] + "#" + "probe", "x" + text + "probe"}
    misses |= {text + "x" for text in rules.exact}
    # Only what the original's pattern itself rejects is a near miss.
    return sorted(miss for miss in misses if not matches(name, miss))


PATTERN_ARMS = [
    pytest.param(runtime, arm.provider, id=f"{runtime}:{arm.provider}")
    for runtime, arms in RUNTIMES.items()
    for arm in arms
]


@pytest.mark.parametrize(("runtime", "name"), PATTERN_ARMS)
def test_ids_a_listed_providers_pattern_accepts_derive_to_it(runtime: str, name: str) -> None:
    for model in _accepted(name):
        original = original_derivation(runtime, model)
        result = derive_provider(BUILT_IN, runtime, model, credential_of(name))
        assert ours(name) in {ours(p) for p in original}
        if original == {name}:
            assert result.provider == ours(name), (model, result.detail)
        else:
            assert result.provider in {ours(p) for p in original}, (model, result.detail)


@pytest.mark.parametrize(("runtime", "name"), PATTERN_ARMS)
def test_near_misses_of_a_listed_providers_pattern_derive_as_in_the_original(
    runtime: str, name: str
) -> None:
    for model in _near_misses(name):
        original = {ours(p) for p in original_derivation(runtime, model)}
        result = derive_provider(BUILT_IN, runtime, model, credential_of(name))
        assert result.provider != ours(name) or ours(name) in original, (model, result.detail)
        if not original:
            assert result.provider is None, (model, result.detail)


def _runtime_not_listing(name: str) -> str | None:
    return next((r for r in ORIGINAL_RUNTIMES if name not in listed(r)), None)


UNLISTED_ARMS = [
    pytest.param(runtime, name, id=f"{name}-not-on-{runtime}")
    for name in sorted({arm.provider for arms in RUNTIMES.values() for arm in arms} - {"platform"})
    if (runtime := _runtime_not_listing(name)) is not None
]


@pytest.mark.parametrize(("runtime", "name"), UNLISTED_ARMS)
def test_a_providers_pattern_does_not_apply_on_a_runtime_that_does_not_list_it(
    runtime: str, name: str
) -> None:
    for model in _accepted(name):
        original = {ours(p) for p in original_derivation(runtime, model)}
        result = derive_provider(BUILT_IN, runtime, model, credential_of(name))
        assert result.provider != ours(name), (model, result.detail)
        assert kind(result.provider) == ("none" if not original else kind(next(iter(original)))), (
            model,
            result.detail,
        )


@pytest.mark.parametrize("runtime", sorted(BUILT_IN.runtimes))
@pytest.mark.parametrize("model", ["platform/anything", "PLATFORM:anything"])
def test_platform_namespaced_ids_are_the_platform_on_every_runtime(
    runtime: str, model: str
) -> None:
    assert derive_provider(BUILT_IN, runtime, model, frozenset()).provider == "platform"
