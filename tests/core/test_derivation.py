"""Derivation (spec §3): typed outcomes, reported candidates, and the compiled lookup tables."""

from __future__ import annotations

from itertools import cycle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmbilling.core.derivation import derive_provider
from llmbilling.core.modes import DerivationOutcome
from llmbilling.core.registry import Candidate, CompiledRegistry, RuleKind
from llmbilling.registry_files import built_in_registry

OAUTH = "CLAUDE_CODE_OAUTH_TOKEN"
API_KEY = "ANTHROPIC_API_KEY"


@pytest.mark.parametrize(
    ("runtime", "model", "auth_env", "outcome", "provider"),
    [
        ("codex", "gpt-5.5", (), DerivationOutcome.OK, "openai"),
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
        Candidate("anthropic-api", RuleKind.ALIAS, "opus"),
        Candidate("anthropic-oauth", RuleKind.ALIAS, "opus"),
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
    assert result.candidates == (Candidate("openai", RuleKind.PREFIX, "gpt-"),)


def test_no_match_reports_no_candidates(builtin: CompiledRegistry) -> None:
    assert derive_provider(builtin, "codex", "totally-made-up", frozenset()).candidates == ()


def test_only_the_most_specific_candidates_are_reported(
    specificity_registry: CompiledRegistry,
) -> None:
    result = derive_provider(specificity_registry, "rt", "acme-pro-max", frozenset())
    assert result.candidates == (Candidate("exacting", RuleKind.EXACT, "acme-pro-max"),)


# --- the compiled tables are dict lookups -----------------------------------------------------


def test_exact_ids_are_keys_of_the_runtime_table_lowercased(builtin: CompiledRegistry) -> None:
    assert builtin.tables["codex"].exact["gpt-5.5"] == (
        Candidate("openai", RuleKind.EXACT, "gpt-5.5"),
    )
    # The key is folded for lookup; the rule keeps the spelling of the file.
    assert builtin.tables["hermes"].exact["minimax-m2"] == (
        Candidate("minimax", RuleKind.EXACT, "MiniMax-M2"),
    )


def test_prefixes_are_keys_of_the_runtime_table(builtin: CompiledRegistry) -> None:
    assert builtin.tables["langgraph"].prefixes["platform/"] == (
        Candidate("platform", RuleKind.PREFIX, "platform/"),
    )
    assert builtin.tables["langgraph"].prefixes["gpt-"] == (
        Candidate("openai", RuleKind.PREFIX, "gpt-"),
    )


def test_runtime_specific_aliases_are_only_in_that_runtime_table(
    builtin: CompiledRegistry,
) -> None:
    assert {c.provider for c in builtin.tables["claude-code"].exact["opus"]} == {
        "anthropic-api",
        "anthropic-oauth",
    }
    assert "opus" not in builtin.tables["codex"].exact


def test_wildcard_rules_are_merged_into_every_runtime_table(builtin: CompiledRegistry) -> None:
    assert set(builtin.tables) == set(builtin.runtimes)
    for table in builtin.tables.values():
        assert "platform:" in table.prefixes
        assert "claude-opus-4-7" in table.exact


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
        for candidates in table.exact.values()
        for candidate in candidates
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
