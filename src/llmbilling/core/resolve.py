"""The decision (spec §2): a pure function of its inputs, a compiled registry and a policy.

Each rung is a small pure function of the inputs it reads, returning a :class:`RungVerdict`
(its trace entry and, when it decides, the mode and source). The order lives in the policy
alone (:data:`~llmbilling.core.policy.CONTRACT_POLICY` by default).

Every rung reads few inputs with few distinct values across a fleet (a handful of override
values, org defaults, (runtime, model, credential) triples), so each rung's verdict is memoized
on exactly what it reads, and the chain's outcome on all of it. Memoizing pure functions
changes no result; it makes a fleet of a million workspaces cost a few thousand evaluations.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from llmbilling.core.decision import (
    BillingDecision,
    ChainOutcome,
    DecisionError,
    Deployment,
    Derivation,
    OrgDefault,
    OverrideReadFailure,
    ResolutionInput,
    TraceEntry,
    Versions,
)
from llmbilling.core.derivation import derive_provider
from llmbilling.core.modes import (
    MODE_VALUES,
    BillingMode,
    DecisionSource,
    DerivationOutcome,
    RungName,
    RungStatus,
    deployment_default,
    recognize_mode,
)
from llmbilling.core.policy import CONTRACT_POLICY, CompiledPolicy
from llmbilling.core.registry import CompiledRegistry

OVERRIDE_READ_FAILED = "OVERRIDE_READ_FAILED"
REGISTRY_UNAVAILABLE = "REGISTRY_UNAVAILABLE"

_ALLOWED = ", ".join(MODE_VALUES)


@dataclass(frozen=True, slots=True)
class RungVerdict:
    """What one rung concluded: its trace entry, and the mode and source when it decided."""

    entry: TraceEntry
    mode: BillingMode | None = None
    source: DecisionSource | None = None


def _skipped(rung: RungName, why: str) -> RungVerdict:
    return RungVerdict(TraceEntry(rung, RungStatus.SKIPPED, why))


def _decided(rung: RungName, why: str, mode: BillingMode, source: DecisionSource) -> RungVerdict:
    return RungVerdict(TraceEntry(rung, RungStatus.DECIDED, why), mode, source)


# --- rung 1: the workspace override ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _OverrideReading:
    verdict: RungVerdict
    recognized: BillingMode | None = None
    read_error: DecisionError | None = None


@lru_cache(maxsize=1024)
def _read_override(
    has_workspace_id: bool, stored: str | OverrideReadFailure | None
) -> _OverrideReading:
    rung = RungName.WORKSPACE_OVERRIDE
    if not has_workspace_id:
        return _OverrideReading(_skipped(rung, "no workspace id: pre-provision path"))
    if isinstance(stored, OverrideReadFailure):
        return _OverrideReading(
            RungVerdict(
                TraceEntry(
                    rung,
                    RungStatus.FAILED,
                    "the stored override could not be read; an unreadable override might have"
                    " said anything, so later rungs are not consulted",
                )
            ),
            read_error=DecisionError(
                OVERRIDE_READ_FAILED, f"could not read the workspace override: {stored.message}"
            ),
        )
    if stored is None:
        return _OverrideReading(_skipped(rung, "no override stored: inherit"))
    mode = recognize_mode(stored)
    if mode is None:
        why = (
            "stored override is empty: inherit"
            if stored == ""
            else f"stored override {stored!r} is not a mode ({_ALLOWED}): ignored"
        )
        return _OverrideReading(_skipped(rung, why))
    return _OverrideReading(
        _decided(
            rung, f"stored override is {mode.value!r}", mode, DecisionSource.WORKSPACE_OVERRIDE
        ),
        recognized=mode,
    )


# --- rung 2: the org default -------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _org_default(raw: str | None) -> tuple[OrgDefault, RungVerdict]:
    """The normalized org default (trim, lowercase; a mode or nothing) and its verdict."""
    rung = RungName.ORG_DEFAULT
    if raw is None:
        return OrgDefault(None, None), _skipped(rung, "no org default configured")
    mode = recognize_mode(raw.strip().lower())
    org_default = OrgDefault(raw, mode)
    if mode is None:
        why = (
            "org default is empty"
            if not raw.strip()
            else f"org default {raw!r} is not a mode ({_ALLOWED}): ignored"
        )
        return org_default, _skipped(rung, why)
    why = (
        f"org default is {mode.value!r}"
        if raw == mode.value
        else f"org default {raw!r} normalizes to {mode.value!r}"
    )
    return org_default, _decided(rung, why, mode, DecisionSource.ORG_DEFAULT)


@lru_cache(maxsize=256)
def _own_key_yields(mode: BillingMode, provider: str) -> RungVerdict:
    return _skipped(
        RungName.ORG_DEFAULT,
        f"org default {mode.value!r} yields: provider {provider!r} has its own credential"
        " and the policy says own_key_wins_over_org_default",
    )


# --- rung 3: the derived provider --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _DerivationReading:
    verdict: RungVerdict
    record: Derivation
    provider_field: str | None
    """The derived provider, else the model as given (when not blank), else None."""
    own_credential_provider: str | None
    """The derived vendor provider when one of its own auth env names is present."""
    error: DecisionError | None


@lru_cache(maxsize=16384)
def _derive(
    registry: CompiledRegistry | None,
    runtime: str | None,
    model: str | None,
    auth_env: frozenset[str],
) -> _DerivationReading:
    rung = RungName.DERIVED_PROVIDER
    result = derive_provider(registry, runtime, model, auth_env)
    record = Derivation(result.outcome, result.detail)
    if result.provider is None or registry is None:
        error = (
            DecisionError(REGISTRY_UNAVAILABLE, result.detail)
            if result.outcome is DerivationOutcome.REGISTRY_UNAVAILABLE
            else None
        )
        return _DerivationReading(
            RungVerdict(
                TraceEntry(rung, RungStatus.FAILED, f"{result.outcome.value}: {result.detail}")
            ),
            record,
            model if model and model.strip() else None,
            None,
            error,
        )
    platform = result.provider == registry.platform_provider
    mode = BillingMode.PLATFORM_MANAGED if platform else BillingMode.BYOK
    role = "the platform provider" if platform else "a vendor provider"
    own_credential = not platform and bool(registry.providers[result.provider].auth_env & auth_env)
    return _DerivationReading(
        _decided(
            rung,
            f"{result.detail}; {role} decides {mode.value!r}",
            mode,
            DecisionSource.DERIVED_PROVIDER,
        ),
        record,
        result.provider,
        result.provider if own_credential else None,
        None,
    )


# --- rung 4: the deployment default ------------------------------------------------------------


def _deployment_verdict(proxy_configured: bool, after_read_failure: bool) -> RungVerdict:
    rung = RungName.DEPLOYMENT_DEFAULT
    mode = deployment_default(proxy_configured)
    setting = "metering proxy configured" if proxy_configured else "no metering proxy (self-host)"
    if after_read_failure:
        return _decided(
            rung,
            f"fail closed after the override read failure: {setting}",
            mode,
            DecisionSource.CONSTANT_FALLBACK,
        )
    return _decided(
        rung, f"no earlier rung decided: {setting}", mode, DecisionSource.DERIVED_DEFAULT
    )


_DEPLOYMENT_VERDICTS = {
    (proxy, failed): _deployment_verdict(proxy, failed)
    for proxy in (True, False)
    for failed in (True, False)
}
_DEPLOYMENTS = {flag: Deployment(flag, deployment_default(flag)) for flag in (True, False)}
_NOT_CONSULTED = {
    (rung, decider): TraceEntry(rung, RungStatus.SKIPPED, f"not consulted: {decider.value} decided")
    for rung in RungName
    for decider in RungName
}
_SKIPPED_UNREADABLE = {
    rung: TraceEntry(rung, RungStatus.SKIPPED, "not consulted: the override could not be read")
    for rung in RungName
}
# With a failed read, only these rungs run: the override (which records the failure) and the
# deployment default (which decides constant_fallback).
_READ_FAILURE_RUNGS = frozenset({RungName.WORKSPACE_OVERRIDE, RungName.DEPLOYMENT_DEFAULT})
_NOT_ATTEMPTED = Derivation(
    DerivationOutcome.NOT_ATTEMPTED, "not attempted: an earlier rung decided"
)
_NOT_ATTEMPTED_FALLBACK = Derivation(
    DerivationOutcome.NOT_ATTEMPTED, "not attempted: the override could not be read"
)


# --- the chain ---------------------------------------------------------------------------------


def resolve_billing_mode(
    inputs: ResolutionInput,
    registry: CompiledRegistry | None,
    policy: CompiledPolicy = CONTRACT_POLICY,
) -> BillingDecision:
    """Decide who pays for a workspace's LLM calls, and record why.

    Pure and total: the same inputs give the same decision, nothing is read from outside, and
    no input makes it raise. A registry of None means it could not be loaded. The trace has one
    entry per rung of ``policy``, in its order.
    """
    outcome = _run_chain(
        bool(inputs.workspace_id),
        inputs.override,
        inputs.org_default,
        inputs.runtime,
        inputs.model,
        relevant_auth_env(inputs.auth_env, registry),
        inputs.proxy_configured,
        registry,
        policy,
    )
    return BillingDecision(inputs.workspace_id, outcome)


def relevant_auth_env(
    auth_env: frozenset[str], registry: CompiledRegistry | None
) -> frozenset[str]:
    """The names among ``auth_env`` that can change a decision: the registry's credentials.

    A workspace's other secrets (``GITHUB_TOKEN``…) never matter, so leaving them out of the
    memo keys lets workspaces that differ only in those share one outcome.
    """
    if registry is None or not auth_env:
        return frozenset()
    return auth_env & registry.all_auth_env


# The outcome depends on the workspace id only through whether there is one.
@lru_cache(maxsize=16384)
def _run_chain(
    has_workspace_id: bool,
    override: str | OverrideReadFailure | None,
    org_default_raw: str | None,
    runtime: str | None,
    model: str | None,
    auth_env: frozenset[str],
    proxy_configured: bool,
    registry: CompiledRegistry | None,
    policy: CompiledPolicy,
) -> ChainOutcome:
    org_default, org_verdict = _org_default(org_default_raw)
    recognized_override: BillingMode | None = None
    # A failed read fails closed under every policy, wherever it puts the override rung (or
    # if it drops it): an override we could not read might have said anything, so no rung
    # may decide from what else was given, and the error must travel beside the decision.
    error = _read_override(has_workspace_id, override).read_error
    unreadable = error is not None
    derivation: _DerivationReading | None = None
    mode: BillingMode | None = None
    source: DecisionSource | None = None
    decided_by: RungName | None = None
    trace: list[TraceEntry] = []
    for rung in policy.rungs:
        if decided_by is not None:
            trace.append(_NOT_CONSULTED[rung, decided_by])
            continue
        if unreadable and rung not in _READ_FAILURE_RUNGS:
            trace.append(_SKIPPED_UNREADABLE[rung])
            continue
        if rung is RungName.WORKSPACE_OVERRIDE:
            reading = _read_override(has_workspace_id, override)
            verdict = reading.verdict
            recognized_override = reading.recognized
        elif rung is RungName.ORG_DEFAULT:
            verdict = org_verdict
            if verdict.mode is not None and policy.own_key_wins_over_org_default:
                derivation = derivation or _derive(registry, runtime, model, auth_env)
                if derivation.own_credential_provider is not None:
                    verdict = _own_key_yields(verdict.mode, derivation.own_credential_provider)
        elif rung is RungName.DERIVED_PROVIDER:
            derivation = derivation or _derive(registry, runtime, model, auth_env)
            verdict = derivation.verdict
            error = derivation.error
        else:
            verdict = _DEPLOYMENT_VERDICTS[proxy_configured, unreadable]
        trace.append(verdict.entry)
        if verdict.mode is not None:
            mode, source, decided_by = verdict.mode, verdict.source, rung
    # Every policy ends in the deployment default, which always decides.
    assert mode is not None
    assert source is not None
    if derivation is None:
        record = _NOT_ATTEMPTED_FALLBACK if unreadable else _NOT_ATTEMPTED
    else:
        record = derivation.record
    return ChainOutcome(
        mode=mode,
        source=source,
        workspace_override=recognized_override,
        org_default=org_default,
        provider=None if derivation is None else derivation.provider_field,
        derivation=record,
        trace=tuple(trace),
        error=error,
        deployment=_DEPLOYMENTS[proxy_configured],
        versions=Versions(
            policy=policy.version, registry=None if registry is None else registry.version
        ),
    )


def clear_resolution_memo() -> None:
    """Forget every memoized verdict and outcome (benchmarks use it to measure cold cost)."""
    for memo in (_run_chain, _read_override, _org_default, _own_key_yields, _derive):
        memo.cache_clear()
