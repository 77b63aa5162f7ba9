"""Every "A beats B" rule of the contract, one short test each (spec §2 rungs, §3 specificity)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from llmbilling.core.decision import BillingDecision, OverrideReadFailure, ResolutionInput
from llmbilling.core.derivation import derive_provider
from llmbilling.core.registry import CompiledRegistry
from llmbilling.core.resolve import resolve_billing_mode

WORKSPACE = "workspace-1"
READ_FAILED = OverrideReadFailure("connection refused")
RT = "rt"  # the one runtime of `make_registry` registries

RegistryFactory = Callable[..., CompiledRegistry]


def decide(registry: CompiledRegistry | None, **inputs: Any) -> BillingDecision:
    inputs.setdefault("workspace_id", WORKSPACE)
    return resolve_billing_mode(ResolutionInput(**inputs), registry)


def decided(decision: BillingDecision) -> tuple[str, str]:
    return decision.mode.value, decision.source.value


def provider(
    spec_id: str, rules: dict[str, list[str]], auth_env: list[str] | None = None
) -> dict[str, Any]:
    return {"id": spec_id, "name": spec_id, "auth_env": auth_env or ["UNUSED_KEY"], "rules": rules}


# --- the rungs (spec §2) ---------------------------------------------------------------------


def test_override_beats_org_default(builtin: CompiledRegistry) -> None:
    decision = decide(builtin, override="byok", org_default="platform_managed")
    assert decided(decision) == ("byok", "workspace_override")


def test_override_beats_derived_provider(builtin: CompiledRegistry) -> None:
    decision = decide(builtin, override="disabled", runtime="codex", model="gpt-5.5")
    assert decided(decision) == ("disabled", "workspace_override")


def test_override_beats_deployment_default(builtin: CompiledRegistry) -> None:
    decision = decide(builtin, override="byok", proxy_configured=True)
    assert decided(decision) == ("byok", "workspace_override")


def test_org_default_beats_derived_provider(builtin: CompiledRegistry) -> None:
    decision = decide(builtin, org_default="platform_managed", runtime="codex", model="gpt-5.5")
    assert decided(decision) == ("platform_managed", "org_default")


def test_org_default_beats_deployment_default(builtin: CompiledRegistry) -> None:
    decision = decide(builtin, org_default="byok", proxy_configured=True)
    assert decided(decision) == ("byok", "org_default")


def test_derived_vendor_provider_beats_saas_deployment_default(builtin: CompiledRegistry) -> None:
    decision = decide(builtin, runtime="codex", model="gpt-5.5", proxy_configured=True)
    assert decided(decision) == ("byok", "derived_provider")


def test_derived_platform_provider_beats_self_host_deployment_default(
    builtin: CompiledRegistry,
) -> None:
    decision = decide(builtin, runtime="codex", model="platform/x", proxy_configured=False)
    assert decided(decision) == ("platform_managed", "derived_provider")


def test_read_failure_beats_org_default(builtin: CompiledRegistry) -> None:
    decision = decide(builtin, override=READ_FAILED, org_default="byok", proxy_configured=True)
    assert decided(decision) == ("platform_managed", "constant_fallback")


def test_read_failure_beats_derived_provider(builtin: CompiledRegistry) -> None:
    decision = decide(
        builtin, override=READ_FAILED, runtime="codex", model="platform/x", proxy_configured=False
    )
    assert decided(decision) == ("byok", "constant_fallback")


def test_read_failure_beats_registry_unavailability() -> None:
    decision = decide(None, override=READ_FAILED, runtime="codex", model="gpt-5.5")
    assert decision.error is not None
    assert decision.error.code == "OVERRIDE_READ_FAILED"


def test_missing_workspace_id_beats_override(builtin: CompiledRegistry) -> None:
    decision = decide(builtin, workspace_id="", override="disabled", org_default="byok")
    assert decided(decision) == ("byok", "org_default")


def test_missing_workspace_id_beats_read_failure(builtin: CompiledRegistry) -> None:
    decision = decide(builtin, workspace_id=None, override=READ_FAILED, org_default="byok")
    assert decided(decision) == ("byok", "org_default")
    assert decision.error is None


def test_garbled_override_yields_to_org_default(builtin: CompiledRegistry) -> None:
    decision = decide(builtin, override="byokk", org_default="platform_managed")
    assert decided(decision) == ("platform_managed", "org_default")


def test_unrecognized_org_default_yields_to_derived_provider(builtin: CompiledRegistry) -> None:
    decision = decide(builtin, org_default="byokk", runtime="codex", model="gpt-5.5")
    assert decided(decision) == ("byok", "derived_provider")


def test_failed_derivation_yields_to_deployment_default(builtin: CompiledRegistry) -> None:
    decision = decide(builtin, runtime="codex", model="totally-made-up", proxy_configured=False)
    assert decided(decision) == ("byok", "derived_default")


# --- specificity within derivation (spec §3) -------------------------------------------------


def test_exact_beats_prefix(make_registry: RegistryFactory) -> None:
    registry = make_registry(
        provider("by-prefix", {"prefix": ["acme-"]}),
        provider("by-exact", {"exact": ["acme-1"]}),
    )
    assert derive_provider(registry, RT, "acme-1", frozenset()).provider == "by-exact"


def test_alias_beats_prefix(make_registry: RegistryFactory) -> None:
    registry = make_registry(
        provider("by-prefix", {"prefix": ["acme"]}),
        provider("by-alias", {"alias": ["acme"]}),
    )
    assert derive_provider(registry, RT, "acme", frozenset()).provider == "by-alias"


def test_exact_beats_prefix_even_when_auth_env_names_only_the_prefix_provider(
    make_registry: RegistryFactory,
) -> None:
    registry = make_registry(
        provider("by-prefix", {"prefix": ["acme-"]}, ["PREFIX_KEY"]),
        provider("by-exact", {"exact": ["acme-1"]}, ["EXACT_KEY"]),
    )
    result = derive_provider(registry, RT, "acme-1", frozenset({"PREFIX_KEY"}))
    assert result.provider == "by-exact"


def test_longer_prefix_beats_shorter(make_registry: RegistryFactory) -> None:
    registry = make_registry(
        provider("short", {"prefix": ["acme-"]}),
        provider("long", {"prefix": ["acme-pro-"]}),
    )
    assert derive_provider(registry, RT, "acme-pro-9", frozenset()).provider == "long"


def test_longer_prefix_beats_shorter_even_when_auth_env_names_only_the_shorter(
    make_registry: RegistryFactory,
) -> None:
    registry = make_registry(
        provider("short", {"prefix": ["acme-"]}, ["SHORT_KEY"]),
        provider("long", {"prefix": ["acme-pro-"]}, ["LONG_KEY"]),
    )
    result = derive_provider(registry, RT, "acme-pro-9", frozenset({"SHORT_KEY"}))
    assert result.provider == "long"


def test_exact_and_alias_are_equally_specific(make_registry: RegistryFactory) -> None:
    registry = make_registry(
        provider("by-exact", {"exact": ["acme"]}),
        provider("by-alias", {"alias": ["acme"]}),
    )
    result = derive_provider(registry, RT, "acme", frozenset())
    assert result.outcome.value == "ambiguous_model"
    assert {c.provider for c in result.candidates} == {"by-exact", "by-alias"}


@pytest.mark.parametrize(
    ("auth_env", "winner"),
    [(frozenset({"A_KEY"}), "vendor-a"), (frozenset({"B_KEY", "UNRELATED"}), "vendor-b")],
)
def test_auth_env_breaks_a_tie_among_equally_specific_candidates(
    make_registry: RegistryFactory, auth_env: frozenset[str], winner: str
) -> None:
    registry = make_registry(
        provider("vendor-a", {"prefix": ["acme-"]}, ["A_KEY"]),
        provider("vendor-b", {"prefix": ["acme-"]}, ["B_KEY"]),
    )
    assert derive_provider(registry, RT, "acme-1", auth_env).provider == winner


TIE_KINDS = [
    pytest.param("prefix", "acme-", "acme-1", id="prefix"),
    pytest.param("alias", "acme", "acme", id="alias"),
]
UNSETTLED = [
    pytest.param(frozenset(), id="no-names"),
    pytest.param(frozenset({"UNRELATED"}), id="unrelated-names"),
    pytest.param(frozenset({"A_KEY", "B_KEY"}), id="names-of-both"),
]


@pytest.mark.parametrize("auth_env", UNSETTLED)
@pytest.mark.parametrize(("kind", "rule", "model"), TIE_KINDS)
def test_prefix_or_alias_tie_that_auth_env_does_not_narrow_to_one_is_ambiguous(
    make_registry: RegistryFactory, kind: str, rule: str, model: str, auth_env: frozenset[str]
) -> None:
    registry = make_registry(
        provider("vendor-a", {kind: [rule]}, ["A_KEY"]),
        provider("vendor-b", {kind: [rule]}, ["B_KEY"]),
    )
    result = derive_provider(registry, RT, model, auth_env)
    assert (result.outcome.value, result.provider) == ("ambiguous_model", None)


@pytest.mark.parametrize("auth_env", UNSETTLED)
@pytest.mark.parametrize("first", ["vendor-a", "vendor-b"])
def test_exact_id_tie_that_auth_env_does_not_narrow_to_one_goes_to_the_first_listed(
    make_registry: RegistryFactory, first: str, auth_env: frozenset[str]
) -> None:
    specs = {
        "vendor-a": provider("vendor-a", {"exact": ["acme-1"]}, ["A_KEY"]),
        "vendor-b": provider("vendor-b", {"exact": ["acme-1"]}, ["B_KEY"]),
    }
    second = next(name for name in specs if name != first)
    registry = make_registry(specs[first], specs[second])
    result = derive_provider(registry, RT, "acme-1", auth_env)
    assert (result.outcome.value, result.provider) == ("ok", first)
    assert "first" in result.detail


@pytest.mark.parametrize(
    ("auth_env", "winner"),
    [(frozenset({"A_KEY"}), "vendor-a"), (frozenset({"B_KEY"}), "vendor-b")],
)
def test_auth_env_settles_an_exact_id_tie_before_order(
    make_registry: RegistryFactory, auth_env: frozenset[str], winner: str
) -> None:
    registry = make_registry(
        provider("vendor-a", {"exact": ["acme-1"]}, ["A_KEY"]),
        provider("vendor-b", {"exact": ["acme-1"]}, ["B_KEY"]),
    )
    assert derive_provider(registry, RT, "acme-1", auth_env).provider == winner


def test_empty_model_is_reported_before_unknown_runtime(builtin: CompiledRegistry) -> None:
    result = derive_provider(builtin, "nosuchruntime", "  ", frozenset())
    assert result.outcome.value == "no_model"
