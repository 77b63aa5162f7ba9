"""Derive the provider of (runtime, model, auth env names) through a compiled registry (spec §3).

A derivation depends on the model's text only through the rule it reaches and the detail,
which quotes it. So each registry is prepared once, on first use, into lookup tables whose
entries already hold everything but that quotation: outcome, provider, candidates and the rest
of the detail. A derivation is then a few dict probes (never a scan of the rules) and one
string concatenation; a tie is split once per set of its candidates' credential names present,
and remembered.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from llmbilling.core.modes import DerivationOutcome
from llmbilling.core.registry import Candidate, CompiledRegistry, Match, RuntimeTable


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


@dataclass(frozen=True, slots=True, eq=False)
class Derived:
    """A derivation but for the model's own text: what :func:`derive_provider` returns, with
    the detail left to :meth:`detail`. Models that reach the same rule (or fail the same way)
    under the same credentials share one object; compared by identity."""

    outcome: DerivationOutcome
    provider: str | None
    """Set only when ``outcome`` is ``ok``."""
    candidates: tuple[Candidate, ...]
    key: Hashable
    """What :func:`derivation_key` returns for the inputs that led here."""
    text: str
    """The detail after ``model '<model>'`` when ``quotes_model``, else the whole detail."""
    quotes_model: bool

    def detail(self, model: str | None) -> str:
        """The detail of this derivation of ``model``, as :class:`DerivationResult` has it."""
        return f"model {model!r}{self.text}" if self.quotes_model else self.text


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
    derived = derive(registry, runtime, model, auth_env)
    return DerivationResult(
        derived.outcome, derived.provider, derived.detail(model), derived.candidates
    )


def derive(
    registry: CompiledRegistry | None,
    runtime: str | None,
    model: str | None,
    auth_env: frozenset[str],
) -> Derived:
    """:func:`derive_provider` without building its result: the same outcome, provider and
    candidates, and the same detail through :meth:`Derived.detail` of the same ``model``."""
    found = _lookup(registry, runtime, model)
    return found.resolve(auth_env) if isinstance(found, _Tie) else found


def derivation_key(
    registry: CompiledRegistry | None, runtime: str | None, model: str | None
) -> Hashable:
    """What :func:`derive_provider`'s outcome and provider depend on besides the auth env:
    inputs with equal keys (under the same registry) derive the same outcome and provider
    under every auth env; only the detail text, which names the model, may differ."""
    return _lookup(registry, runtime, model).key


# --- the prepared registry ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class _Tie:
    """Equally specific candidates of one lookup key, split by the credentials present."""

    candidates: tuple[Candidate, ...]
    credentials: tuple[frozenset[str], ...]
    """Each candidate's auth env names, in the same order."""
    relevant: frozenset[str]
    """Every candidate's auth env names: the only ones that can change the split."""
    matched: str
    order_breaks_ties: bool
    runtime_key: str
    key: Hashable
    split: dict[frozenset[str], Derived]
    """Memo: the derivation per set of relevant names present (few per tie in a fleet)."""

    def resolve(self, auth_env: frozenset[str]) -> Derived:
        present = self.relevant & auth_env if auth_env else _NONE
        derived = self.split.get(present)
        if derived is None:
            derived = self._break(present)
            if len(self.split) < _SPLIT_MEMO_LIMIT:  # bounded whatever names callers send
                self.split[present] = derived
        return derived

    def _break(self, present: frozenset[str]) -> Derived:
        candidates = self.candidates
        with_credential = [
            (candidate, credentials & present)
            for candidate, credentials in zip(candidates, self.credentials, strict=True)
            if credentials & present
        ]
        if len(with_credential) == 1:
            winner, names = with_credential[0]
            return self._derived(
                winner.provider,
                f"; auth env {', '.join(sorted(names))} selects {winner.provider!r}",
            )
        reason = (
            "no given auth env belongs to any of them"
            if not with_credential
            else "auth env belongs to " + ", ".join(c.provider for c, _ in with_credential)
        )
        if self.order_breaks_ties:
            winner = with_credential[0][0] if with_credential else candidates[0]
            return self._derived(
                winner.provider,
                f"; {reason}; runtime {self.runtime_key!r} lists {winner.provider!r} first",
            )
        return Derived(
            DerivationOutcome.AMBIGUOUS_MODEL,
            None,
            candidates,
            self.key,
            f"{self.matched}; {reason}",
            True,
        )

    def _derived(self, provider: str, why: str) -> Derived:
        return Derived(
            DerivationOutcome.OK, provider, self.candidates, self.key, self.matched + why, True
        )


_Entry = Derived | _Tie
_NONE: frozenset[str] = frozenset()
_SPLIT_MEMO_LIMIT = 256


@dataclass(frozen=True, slots=True, eq=False)
class _Table:
    """One runtime's :class:`RuntimeTable`, each match prepared.

    ``lengths_by_head`` narrows the prefix probes: every prefix is at least ``head`` long, so
    only the prefix lengths among those starting with the model's first ``head`` characters
    can match (usually one) — the same longest-first dict probes, fewer of them.
    """

    exact: Mapping[str, _Entry]
    prefixes: Mapping[str, _Entry]
    head: int
    lengths_by_head: Mapping[str, tuple[int, ...]]
    unregistered: Derived


def _lookup(registry: CompiledRegistry | None, runtime: str | None, model: str | None) -> _Entry:
    """The prepared entry of the model's most specific matches, or the failed derivation."""
    if registry is None:
        return _NO_REGISTRY
    key = model.strip().lower() if model else ""
    if not key:
        return _NO_MODEL
    tables = _prepared(registry)
    # Runtime ids are lowercase and trimmed, so one given as declared is found as given.
    table = tables.get(runtime) if runtime is not None else None
    if table is None:
        runtime_key = runtime.strip().lower() if runtime else ""
        table = tables.get(runtime_key)
        if table is None:
            if not runtime_key:
                return _NO_RUNTIME
            return _failed(
                DerivationOutcome.UNKNOWN_RUNTIME, f"runtime {runtime!r} is not in the registry"
            )
    found = table.exact.get(key)
    if found is not None:
        return found
    lengths = table.lengths_by_head.get(key[: table.head])
    if lengths is not None:
        size = len(key)
        for length in lengths:
            if size >= length:
                found = table.prefixes.get(key[:length])
                if found is not None:
                    return found
    return table.unregistered


def _failed(outcome: DerivationOutcome, detail: str) -> Derived:
    return Derived(outcome, None, (), outcome, detail, False)


_NO_REGISTRY = _failed(DerivationOutcome.REGISTRY_UNAVAILABLE, "no provider registry is available")
_NO_MODEL = _failed(DerivationOutcome.NO_MODEL, "no model given")
_NO_RUNTIME = _failed(DerivationOutcome.UNKNOWN_RUNTIME, "no runtime given")


# Keyed by identity (a compiled registry compares by identity) and holding the registry, so an
# entry is never taken for another registry's.
@lru_cache(maxsize=32)
def _prepared(registry: CompiledRegistry) -> Mapping[str, _Table]:
    return {
        runtime: _prepare_table(registry, runtime, table)
        for runtime, table in registry.tables.items()
    }


def clear_prepared_registries() -> None:
    """Forget every prepared registry (benchmarks use it to measure cold cost)."""
    _prepared.cache_clear()


def _prepare_table(registry: CompiledRegistry, runtime_key: str, table: RuntimeTable) -> _Table:
    head = min(table.prefix_lengths, default=0)
    lengths_by_head: dict[str, list[int]] = {}
    for length in table.prefix_lengths:  # longest first
        for prefix in table.prefixes:
            if len(prefix) == length:
                heads = lengths_by_head.setdefault(prefix[:head], [])
                if length not in heads:
                    heads.append(length)
    return _Table(
        exact={key: _prepare(registry, runtime_key, m) for key, m in table.exact.items()},
        prefixes={key: _prepare(registry, runtime_key, m) for key, m in table.prefixes.items()},
        head=head,
        lengths_by_head={key: tuple(lengths) for key, lengths in lengths_by_head.items()},
        unregistered=Derived(
            DerivationOutcome.UNREGISTERED_MODEL,
            None,
            (),
            DerivationOutcome.UNREGISTERED_MODEL,
            f" matches no rule for runtime {runtime_key!r}",
            True,
        ),
    )


def _prepare(registry: CompiledRegistry, runtime_key: str, match: Match) -> _Entry:
    candidates = match.candidates
    key = (match.order_breaks_ties, *(candidate.provider for candidate in candidates))
    if len(candidates) == 1:
        winner = candidates[0]
        return Derived(
            DerivationOutcome.OK,
            winner.provider,
            candidates,
            key,
            f" matched {winner.rule_kind.value} rule {winner.rule!r}"
            f" of provider {winner.provider!r}",
            True,
        )
    credentials = tuple(registry.providers[c.provider].auth_env for c in candidates)
    names = ", ".join(c.provider for c in candidates)
    return _Tie(
        candidates=candidates,
        credentials=credentials,
        relevant=frozenset().union(*credentials),
        matched=f" matched {candidates[0].rule_kind.value} rules of providers {names}",
        order_breaks_ties=match.order_breaks_ties,
        runtime_key=runtime_key,
        key=key,
        split={},
    )
