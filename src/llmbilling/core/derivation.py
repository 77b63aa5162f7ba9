"""Derive the provider of (runtime, model, auth env names) through a compiled registry (spec §3)."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from llmbilling.core.modes import DerivationOutcome
from llmbilling.core.registry import Candidate, CompiledRegistry, Match


@dataclass(frozen=True, slots=True)
class DerivationResult:
    """The outcome of a derivation. ``provider`` is set only when ``outcome`` is ``ok``.

    ``candidates`` are the most specific matches (before the tie-break), in the runtime's
    declared order; ``detail`` says in words what happened.
    """

    outcome: DerivationOutcome
    provider: str | None
    detail: str
    candidates: tuple[Candidate, ...] = ()


def derive_provider(
    registry: CompiledRegistry | None,
    runtime: str | None,
    model: str | None,
    auth_env: frozenset[str],
) -> DerivationResult:
    """Derive a provider. Never raises; every failure is a typed outcome.

    Several equally specific candidates are split by credentials: those with one of their
    auth env names present; exactly one left wins. Otherwise an exact id goes to the first of
    them (or of all, when none has a credential) in the runtime's declared order, and an alias
    or prefix is ambiguous.
    """
    matched = _match(registry, runtime, model)
    if isinstance(matched, DerivationResult):
        return matched
    registry, match = matched
    candidates = match.candidates
    if len(candidates) == 1:
        winner = candidates[0]
        return DerivationResult(
            DerivationOutcome.OK,
            winner.provider,
            f"model {model!r} matched {winner.rule_kind.value} rule {winner.rule!r}"
            f" of provider {winner.provider!r}",
            candidates,
        )
    return _break_tie(registry, runtime, model, match, auth_env)


def derivation_key(
    registry: CompiledRegistry | None, runtime: str | None, model: str | None
) -> Hashable:
    """What :func:`derive_provider`'s outcome and provider depend on besides the auth env:
    inputs with equal keys (under the same registry) derive the same outcome and provider
    under every auth env; only the detail text, which names the model, may differ."""
    matched = _match(registry, runtime, model)
    if isinstance(matched, DerivationResult):
        return matched.outcome
    match = matched[1]
    return (match.order_breaks_ties, *(candidate.provider for candidate in match.candidates))


def _match(
    registry: CompiledRegistry | None, runtime: str | None, model: str | None
) -> DerivationResult | tuple[CompiledRegistry, Match]:
    """The most specific matches of the model for the runtime, or the failed derivation."""
    if registry is None:
        return DerivationResult(
            DerivationOutcome.REGISTRY_UNAVAILABLE, None, "no provider registry is available"
        )
    key = model.strip().lower() if model else ""
    if not key:
        return DerivationResult(DerivationOutcome.NO_MODEL, None, "no model given")
    runtime_key = runtime.strip().lower() if runtime else ""
    table = registry.tables.get(runtime_key)
    if table is None:
        detail = (
            f"runtime {runtime!r} is not in the registry" if runtime_key else "no runtime given"
        )
        return DerivationResult(DerivationOutcome.UNKNOWN_RUNTIME, None, detail)

    match = table.exact.get(key)
    if match is None:
        for length in table.prefix_lengths:
            if len(key) >= length:
                match = table.prefixes.get(key[:length])
                if match is not None:
                    break
    if match is None:
        return DerivationResult(
            DerivationOutcome.UNREGISTERED_MODEL,
            None,
            f"model {model!r} matches no rule for runtime {runtime_key!r}",
        )
    return registry, match


def _break_tie(
    registry: CompiledRegistry,
    runtime: str | None,
    model: str | None,
    match: Match,
    auth_env: frozenset[str],
) -> DerivationResult:
    candidates = match.candidates
    names = ", ".join(c.provider for c in candidates)
    kind = candidates[0].rule_kind.value
    matched = f"model {model!r} matched {kind} rules of providers {names}"
    with_credential = [c for c in candidates if registry.providers[c.provider].auth_env & auth_env]
    if len(with_credential) == 1:
        winner = with_credential[0]
        present = sorted(registry.providers[winner.provider].auth_env & auth_env)
        return DerivationResult(
            DerivationOutcome.OK,
            winner.provider,
            f"{matched}; auth env {', '.join(present)} selects {winner.provider!r}",
            candidates,
        )
    reason = (
        "no given auth env belongs to any of them"
        if not with_credential
        else "auth env belongs to " + ", ".join(c.provider for c in with_credential)
    )
    if match.order_breaks_ties:
        winner = (with_credential or list(candidates))[0]
        return DerivationResult(
            DerivationOutcome.OK,
            winner.provider,
            f"{matched}; {reason}; runtime {(runtime or '').strip().lower()!r} lists"
            f" {winner.provider!r} first",
            candidates,
        )
    return DerivationResult(
        DerivationOutcome.AMBIGUOUS_MODEL,
        None,
        f"{matched}; {reason}",
        candidates,
    )
