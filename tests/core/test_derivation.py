"""Derivation (spec §3): typed outcomes, reported candidates, and the compiled lookup tables."""

from __future__ import annotations

from itertools import cycle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmbilling.config.registry import built_in_registry
from llmbilling.core.derivation import derivation_key, derive_provider
from llmbilling.core.modes import DerivationOutcome
from llmbilling.core.registry import Candidate, CompiledRegistry, RuleKind

OAUTH = "CLAUDE_CODE_OAUTH_TOKEN"
API_KEY = "ANTHROPIC_API_KEY"


@pytest.mark.parametrize(
    ("runtime", "model", "auth_env", "outcome", "provider"),
    [
        ("codex", "gpt-5.5", (), DerivationOutcome.OK, "openai-subscription"),
        ("codex", "gpt-5.5", ("OPENAI_API_KEY",), DerivationOutcome.OK, "openai"),
        ("codex", None, (), DerivationOutcome.NO_MODEL, None),
        ("codex", " \n", (), DerivationOutcome.NO_MODEL, None),
        ("nosuchruntime", "gpt-5.5", (), DerivationOutcome.UNKNOWN_RUNTIME, None),
        (None, "gpt-5.5", (), DerivationOutcome.UNKNOWN_RUNTIME, None),
        ("codex", "totally-made-up", (), DerivationOutcome.UNREGISTERED_MODEL, None),
        ("claude-code", "opus", (), DerivationOutcome.AMBIGUOUS_MODEL, None),
        ("claude-code", "opus", (OAUTH,), DerivationOutcome.OK, "anthropic-oauth"),
    ],
)
def test_every_result_is_a_typed_outcome_with_a_provider_only_when_ok(
    builtin: CompiledRegistry,
    runtime: str | None,
    model: str | None,
    auth_env: tuple[str, ...],
    outcome: DerivationOutcome,
    provider: str | None,
) -> None:
    result = derive_provider(builtin, runtime, model, frozenset(auth_env))
    assert (result.outcome, result.provider) == (outcome, provider)
    assert result.detail


def test_missing_registry_is_registry_unavailable() -> None:
    result = derive_provider(None, "codex", "gpt-5.5", frozenset())
    assert (result.outcome, result.provider) == (DerivationOutcome.REGISTRY_UNAVAILABLE, None)


def test_ambiguous_result_reports_every_tied_candidate(builtin: CompiledRegistry) -> None:
    result = derive_provider(builtin, "claude-code", "opus", frozenset({OAUTH, API_KEY}))
    assert result.outcome is DerivationOutcome.AMBIGUOUS_MODEL
    assert result.candidates == (
        Candidate("anthropic-oauth", RuleKind.ALIAS, "opus"),
        Candidate("anthropic-api", RuleKind.ALIAS, "opus"),
    )
    assert "anthropic-api" in result.detail
    assert "anthropic-oauth" in result.detail


def test_tie_broken_by_auth_env_still_reports_the_tied_candidates(
    builtin: CompiledRegistry,
) -> None:
    result = derive_provider(builtin, "claude-code", "opus", frozenset({API_KEY}))
    assert result.provider == "anthropic-api"
    assert {c.provider for c in result.candidates} == {"anthropic-api", "anthropic-oauth"}
    assert API_KEY in result.detail


def test_single_match_reports_its_rule(builtin: CompiledRegistry) -> None:
    result = derive_provider(builtin, "codex", "gpt-6-preview", frozenset())
    assert result.candidates == (Candidate("openai-subscription", RuleKind.PREFIX, "gpt-"),)


def test_no_match_reports_no_candidates(builtin: CompiledRegistry) -> None:
    assert derive_provider(builtin, "codex", "totally-made-up", frozenset()).candidates == ()


def test_only_the_most_specific_candidates_are_reported(
    specificity_registry: CompiledRegistry,
) -> None:
    result = derive_provider(specificity_registry, "rt", "acme-pro-max", frozenset())
    assert result.candidates == (Candidate("exacting", RuleKind.EXACT, "acme-pro-max"),)


# --- the compiled tables are dict lookups -----------------------------------------------------


def test_exact_ids_are_keys_of_the_runtime_table_lowercased(builtin: CompiledRegistry) -> None:
    assert builtin.tables["codex"].exact["gpt-5.5"].candidates == (
        Candidate("openai-subscription", RuleKind.EXACT, "gpt-5.5"),
        Candidate("openai", RuleKind.EXACT, "gpt-5.5"),
    )
    # The key is folded for lookup; the rule keeps the spelling of the file.
    assert builtin.tables["claude-code"].exact["minimax-m2"].candidates == (
        Candidate("minimax", RuleKind.EXACT, "MiniMax-M2"),
    )


def test_prefixes_are_keys_of_the_runtime_table(builtin: CompiledRegistry) -> None:
    assert builtin.tables["langgraph"].prefixes["platform/"].candidates == (
        Candidate("platform", RuleKind.PREFIX, "platform/"),
    )
    assert builtin.tables["langgraph"].prefixes["gpt-"].candidates == (
        Candidate("openai", RuleKind.PREFIX, "gpt-"),
    )


def test_runtime_specific_aliases_are_only_in_that_runtime_table(
    builtin: CompiledRegistry,
) -> None:
    assert {c.provider for c in builtin.tables["claude-code"].exact["opus"].candidates} == {
        "anthropic-api",
        "anthropic-oauth",
    }
    assert "opus" not in builtin.tables["codex"].exact


def test_the_platform_pattern_is_in_every_runtime_table(builtin: CompiledRegistry) -> None:
    assert set(builtin.tables) == set(builtin.runtimes)
    for table in builtin.tables.values():
        assert table.prefixes["platform:"].candidates[0].provider == "platform"
        assert table.prefixes["platform/"].candidates[0].provider == "platform"


def test_a_provider_pattern_applies_only_on_runtimes_that_list_it(
    builtin: CompiledRegistry,
) -> None:
    assert builtin.tables["claude-code"].prefixes["claude"].candidates[0].provider == (
        "anthropic-api"
    )
    assert "claude" not in builtin.tables["hermes"].prefixes


def test_prefix_lengths_are_the_distinct_prefix_lengths_longest_first(
    builtin: CompiledRegistry,
) -> None:
    for table in builtin.tables.values():
        assert list(table.prefix_lengths) == sorted(
            {len(key) for key in table.prefixes}, reverse=True
        )


# --- properties ---------------------------------------------------------------------------------

BUILT_IN = built_in_registry()
_KNOWN_MODELS = sorted(
    {
        candidate.rule
        for table in BUILT_IN.tables.values()
        for match in table.exact.values()
        for candidate in match.candidates
    }
)


@settings(max_examples=300, deadline=None)
@given(
    registry=st.sampled_from([None, BUILT_IN]),
    runtime=st.one_of(st.none(), st.sampled_from(sorted(BUILT_IN.runtimes)), st.text()),
    model=st.one_of(st.none(), st.sampled_from(_KNOWN_MODELS), st.text()),
    auth_env=st.frozensets(st.text(max_size=12), max_size=4),
)
def test_derivation_never_raises_and_sets_a_provider_exactly_when_ok(
    registry: CompiledRegistry | None,
    runtime: str | None,
    model: str | None,
    auth_env: frozenset[str],
) -> None:
    result = derive_provider(registry, runtime, model, auth_env)
    assert (result.provider is not None) == (result.outcome is DerivationOutcome.OK)
    assert result.outcome is not DerivationOutcome.NOT_ATTEMPTED


@settings(max_examples=300, deadline=None)
@given(
    runtime=st.sampled_from(sorted(BUILT_IN.runtimes)),
    model=st.sampled_from(_KNOWN_MODELS),
    flips=st.lists(st.booleans(), min_size=1, max_size=40),
    padding=st.tuples(st.sampled_from(["", " ", "\t", "\n "]), st.sampled_from(["", " ", "\r\n"])),
    auth_env=st.frozensets(st.sampled_from(sorted(BUILT_IN.all_auth_env)), max_size=3),
)
def test_matching_ignores_case_and_surrounding_white_space(
    runtime: str,
    model: str,
    flips: list[bool],
    padding: tuple[str, str],
    auth_env: frozenset[str],
) -> None:
    recased = "".join(c.upper() if f else c.lower() for c, f in zip(model, cycle(flips)))
    noisy = padding[0] + recased + padding[1]

    plain = derive_provider(BUILT_IN, runtime, model, auth_env)
    varied = derive_provider(BUILT_IN, runtime, noisy, auth_env)

    assert (varied.outcome, varied.provider, varied.candidates) == (
        plain.outcome,
        plain.provider,
        plain.candidates,
    )


_MODEL_TEXTS = st.one_of(
    st.none(),
    st.sampled_from(_KNOWN_MODELS),
    st.builds(
        lambda model, tail: model + tail, st.sampled_from(_KNOWN_MODELS), st.text(max_size=6)
    ),
    st.text(max_size=12),
)
_RUNTIMES = st.one_of(st.none(), st.sampled_from(sorted(BUILT_IN.runtimes)), st.text(max_size=8))


@st.composite
def _input_pairs(draw: st.DrawFn) -> tuple[tuple[str | None, str | None], ...]:
    """Two (runtime, model) inputs, mostly on the same runtime, so that equal keys are common
    among matches too, not only among failures."""
    first = (draw(_RUNTIMES), draw(_MODEL_TEXTS))
    runtime = draw(st.one_of(st.just(first[0]), _RUNTIMES))
    return first, (runtime, draw(_MODEL_TEXTS))


@settings(max_examples=1000, deadline=None)
@given(
    registry=st.sampled_from([None, BUILT_IN, BUILT_IN, BUILT_IN]),
    pair=_input_pairs(),
    auth_envs=st.lists(
        st.frozensets(st.sampled_from(sorted(BUILT_IN.all_auth_env)), max_size=3), max_size=6
    ),
)
def test_inputs_with_equal_derivation_keys_derive_alike_under_every_auth_env(
    registry: CompiledRegistry | None,
    pair: tuple[tuple[str | None, str | None], ...],
    auth_envs: list[frozenset[str]],
) -> None:
    first, second = pair
    if derivation_key(registry, *first) != derivation_key(registry, *second):
        return
    for auth_env in [frozenset(), frozenset(BUILT_IN.all_auth_env), *auth_envs]:
        one = derive_provider(registry, *first, auth_env)
        other = derive_provider(registry, *second, auth_env)
        assert (one.outcome, one.provider) == (other.outcome, other.provider)


def test_every_registry_rule_derives_alike_within_its_derivation_key() -> None:
    # Exhaustive over the built-in registry: every runtime with every rule's text (and that
    # text extended, to reach prefix rules), under no credential, each single one, and all.
    auth_envs = [frozenset(), frozenset(BUILT_IN.all_auth_env)] + [
        frozenset({name}) for name in sorted(BUILT_IN.all_auth_env)
    ]
    groups: dict[object, list[tuple[str, str]]] = {}
    for runtime in sorted(BUILT_IN.runtimes):
        for model in _KNOWN_MODELS:
            for text in (model, model + "-2026-01-01"):
                groups.setdefault(derivation_key(BUILT_IN, runtime, text), []).append(
                    (runtime, text)
                )
    shared = [members for members in groups.values() if len(members) > 1]
    assert sum(len(members) for members in shared) >= 100  # the check below checks something
    for members in shared:
        for auth_env in auth_envs:
            derived = {
                (result.outcome, result.provider)
                for result in (derive_provider(BUILT_IN, *member, auth_env) for member in members)
            }
            assert len(derived) == 1, (members[:3], auth_env, derived)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("codex", "gpt-5.5"), ("codex", "GPT-5.5 ")),
        (("codex", None), ("claude-code", " ")),
        (("nosuchruntime", "gpt-5.5"), (None, "claude-opus-4-7")),
        (("codex", "totally-made-up"), ("codex", "also-made-up")),
    ],
)
def test_models_that_derive_alike_share_a_derivation_key(
    builtin: CompiledRegistry,
    first: tuple[str | None, str | None],
    second: tuple[str | None, str | None],
) -> None:
    assert derivation_key(builtin, *first) == derivation_key(builtin, *second)


def test_models_of_different_providers_have_different_derivation_keys(
    builtin: CompiledRegistry,
) -> None:
    assert derivation_key(builtin, "codex", "gpt-5.5") != derivation_key(
        builtin, "claude-code", "claude-opus-4-7"
    )
