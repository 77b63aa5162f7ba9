"""The decision (spec §2): a pure function of its inputs, a compiled registry and a policy.

The chain looks each rung of the policy up in :data:`~llmbilling.core.rungs.RUNGS`, in the
policy's order (:data:`~llmbilling.core.policy.CONTRACT_POLICY` by default), until one decides;
the deployment default, last in every policy, always does. A failed override read is not a
rung's verdict but the chain's rule: it fails closed under every policy.

Every rung reads few inputs with few distinct values across a fleet (a handful of override
values, org defaults, (runtime, model, credential) triples), so the chain's outcome is memoized
on all of them. Memoizing pure functions changes no result; it makes a fleet of a million
workspaces cost a few thousand evaluations, and an input never seen before costs one pass
down the chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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
from llmbilling.core.derivation import clear_prepared_registries
from llmbilling.core.modes import (
    DerivationOutcome,
    RungName,
    RungStatus,
    deployment_default,
)
from llmbilling.core.policy import CONTRACT_POLICY, CompiledPolicy
from llmbilling.core.provisioning import PROVISIONING_UNKNOWN, judge_provisioning
from llmbilling.core.registry import CompiledRegistry
from llmbilling.core.rungs import (
    DEPLOYMENT_VERDICTS,
    RUNGS,
    OverrideReading,
    Situation,
    clear_rung_memos,
    read_org_default,
    read_override,
)

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
_NOT_ATTEMPTED = Derivation(
    DerivationOutcome.NOT_ATTEMPTED, "not attempted: an earlier rung decided"
)
_NOT_ATTEMPTED_FALLBACK = Derivation(
    DerivationOutcome.NOT_ATTEMPTED, "not attempted: the override could not be read"
)


@dataclass(frozen=True, slots=True, eq=False)
class _Plan:
    """What every decision under one policy and registry shares, worked out once."""

    rungs: tuple[RungName, ...]
    not_consulted: tuple[tuple[TraceEntry, ...], ...]
    """Per rung (by position): the entries of the rungs after it, when it decided."""
    versions: Versions


@lru_cache(maxsize=64)
def _plan(policy: CompiledPolicy, registry: CompiledRegistry | None) -> _Plan:
    rungs = policy.rungs
    return _Plan(
        rungs=rungs,
        not_consulted=tuple(
            tuple(_NOT_CONSULTED[later, decider] for later in rungs[position + 1 :])
            for position, decider in enumerate(rungs)
        ),
        versions=Versions(
            policy=policy.version, registry=None if registry is None else registry.version
        ),
    )


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
        override_expired_at(inputs.override_expires_at, inputs.now),
        inputs.org_default,
        inputs.runtime,
        inputs.model,
        relevant_auth_env(inputs.auth_env, registry),
        inputs.proxy_configured,
        registry,
        policy,
    )
    return BillingDecision(inputs.workspace_id, outcome)


def override_expired_at(expires_at: datetime | None, now: datetime | None) -> datetime | None:
    """``expires_at`` when it has passed at ``now`` (or no ``now`` was given), else None.

    The chain is memoized on this, never on ``now``: every unexpired override shares one key.
    """
    if expires_at is None or (now is not None and now < expires_at):
        return None
    return expires_at


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
    expired_at: datetime | None,
    org_default_raw: str | None,
    runtime: str | None,
    model: str | None,
    auth_env: frozenset[str],
    proxy_configured: bool,
    registry: CompiledRegistry | None,
    policy: CompiledPolicy,
) -> ChainOutcome:
    plan = _plan(policy, registry)
    reading = read_override(has_workspace_id, override, expired_at)
    org_default = read_org_default(org_default_raw)[0]
    if reading.read_error is not None:
        return _fail_closed(reading, org_default, proxy_configured, plan)
    situation = Situation(
        has_workspace_id,
        override,
        org_default_raw,
        runtime,
        model,
        auth_env,
        proxy_configured,
        registry,
        policy.own_key_wins_over_org_default,
        expired_at,
    )
    trace: list[TraceEntry] = []
    error: DecisionError | None = None
    for position, name in enumerate(plan.rungs):
        verdict = RUNGS[name].verdict(situation)
        trace.append(verdict.entry)
        if verdict.error is not None:
            error = verdict.error
        if verdict.mode is not None and verdict.source is not None:
            trace.extend(plan.not_consulted[position])
            mode, source = verdict.mode, verdict.source
            break
    else:  # pragma: no cover - a compiled policy always ends in the deployment default
        raise AssertionError("the policy's last rung did not decide")
    derivation, provider = _NOT_ATTEMPTED, None
    if situation.was_derived:
        derived = situation.derived
        derivation = Derivation(derived.outcome, situation.derivation_detail)
        provider = derived.provider
        if provider is None and model and model.strip():
            provider = model
    # Positional: this runs once per input never seen before.
    return ChainOutcome(
        mode,
        source,
        # A recognized override always decides; unconsulted, it is not reported.
        reading.recognized if name is RungName.WORKSPACE_OVERRIDE else None,
        org_default,
        provider,
        derivation,
        tuple(trace),
        error,
        _DEPLOYMENTS[proxy_configured],
        plan.versions,
        judge_provisioning(
            mode,
            source,
            provider,
            model_present=bool(model and model.strip()),
            credential_names=auth_env,
            proxy_configured=proxy_configured,
            registry=registry,
        ),
    )


def _fail_closed(
    reading: OverrideReading, org_default: OrgDefault, proxy_configured: bool, plan: _Plan
) -> ChainOutcome:
    # A failed read fails closed under every policy, wherever it puts the override rung (or
    # if it drops it): an override we could not read might have said anything, so no rung
    # may decide from what else was given, and the error must travel beside the decision.
    verdict = DEPLOYMENT_VERDICTS[proxy_configured, True]
    trace: list[TraceEntry] = []
    for rung in plan.rungs:
        if rung is RungName.WORKSPACE_OVERRIDE:
            trace.append(reading.verdict.entry)  # records the failure
        elif rung is RungName.DEPLOYMENT_DEFAULT:
            trace.append(verdict.entry)  # decides constant_fallback; always the last rung
        else:
            trace.append(_SKIPPED_UNREADABLE[rung])
    assert verdict.mode is not None
    assert verdict.source is not None
    return ChainOutcome(
        mode=verdict.mode,
        source=verdict.source,
        workspace_override=None,
        org_default=org_default,
        provider=None,
        derivation=_NOT_ATTEMPTED_FALLBACK,
        trace=tuple(trace),
        error=reading.read_error,
        deployment=_DEPLOYMENTS[proxy_configured],
        versions=plan.versions,
        # What provisioning meets depends on the state that could not be read.
        provisioning=PROVISIONING_UNKNOWN,
    )


def clear_resolution_memo() -> None:
    """Forget every memoized verdict, outcome and prepared registry (benchmarks use it to
    measure cold cost)."""
    for memo in (_run_chain, _plan):
        memo.cache_clear()
    clear_rung_memos()
    clear_prepared_registries()
