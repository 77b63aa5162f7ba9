"""The decision (spec §2): a pure function of its inputs, a compiled registry and a policy.

Each rung is a small function over one call's scratch state that returns its trace entry and,
when it decides, sets the mode and source. The order lives in the policy alone
(:data:`~llmbilling.core.policy.CONTRACT_POLICY` by default).
"""

from __future__ import annotations

from collections.abc import Callable
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
from llmbilling.core.derivation import DerivationResult, derive_provider
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
_DEPLOYMENTS = {flag: Deployment(flag, deployment_default(flag)) for flag in (True, False)}
_NOT_ATTEMPTED = Derivation(
    DerivationOutcome.NOT_ATTEMPTED, "not attempted: an earlier rung decided"
)
_NOT_ATTEMPTED_FALLBACK = Derivation(
    DerivationOutcome.NOT_ATTEMPTED, "not attempted: the override could not be read"
)
_NO_ORG_DEFAULT = OrgDefault(None, None)
_NO_WORKSPACE_ID = TraceEntry(
    RungName.WORKSPACE_OVERRIDE, RungStatus.SKIPPED, "no workspace id: pre-provision path"
)
_NO_OVERRIDE = TraceEntry(
    RungName.WORKSPACE_OVERRIDE, RungStatus.SKIPPED, "no override stored: inherit"
)
_NO_ORG_DEFAULT_CONFIGURED = TraceEntry(
    RungName.ORG_DEFAULT, RungStatus.SKIPPED, "no org default configured"
)


class _Resolution:
    """Scratch state of one resolution; never escapes :func:`resolve_billing_mode`."""

    __slots__ = (
        "auth_env",
        "decided_by",
        "derivation",
        "error",
        "has_workspace_id",
        "mode",
        "model",
        "org_default",
        "override",
        "override_unreadable",
        "policy",
        "proxy_configured",
        "registry",
        "runtime",
        "source",
        "stored_override",
    )

    def __init__(
        self,
        has_workspace_id: bool,
        stored_override: str | OverrideReadFailure | None,
        org_default: str | None,
        runtime: str | None,
        model: str | None,
        auth_env: frozenset[str],
        proxy_configured: bool,
        registry: CompiledRegistry | None,
        policy: CompiledPolicy,
    ) -> None:
        self.policy = policy
        self.has_workspace_id = has_workspace_id
        self.stored_override = stored_override
        self.runtime = runtime
        self.model = model
        self.auth_env = auth_env
        self.proxy_configured = proxy_configured
        self.registry = registry
        self.mode: BillingMode | None = None
        self.source: DecisionSource | None = None
        self.decided_by: RungName | None = None
        self.override: BillingMode | None = None
        self.override_unreadable = False
        self.org_default = _normalize_org_default(org_default)
        self.derivation: DerivationResult | None = None
        self.error: DecisionError | None = None

    def decide(self, rung: RungName, mode: BillingMode, source: DecisionSource) -> None:
        self.mode = mode
        self.source = source
        self.decided_by = rung

    def derive(self) -> DerivationResult:
        """Derive once per resolution, whichever rung asks first."""
        if self.derivation is None:
            self.derivation = derive_provider(
                self.registry, self.runtime, self.model, self.auth_env
            )
        return self.derivation

    def own_credential_present(self) -> str | None:
        """The derived vendor provider when one of its own auth env names is present."""
        result = self.derive()
        registry = self.registry
        if result.provider is None or registry is None:
            return None
        if result.provider == registry.platform_provider:
            return None
        if registry.providers[result.provider].auth_env & self.auth_env:
            return result.provider
        return None


def _normalize_org_default(raw: str | None) -> OrgDefault:
    if raw is None:
        return _NO_ORG_DEFAULT
    return OrgDefault(raw, recognize_mode(raw.strip().lower()))


def _workspace_override(state: _Resolution) -> TraceEntry:
    rung = RungName.WORKSPACE_OVERRIDE
    if not state.has_workspace_id:
        return _NO_WORKSPACE_ID
    stored = state.stored_override
    if isinstance(stored, OverrideReadFailure):
        state.override_unreadable = True
        state.error = DecisionError(
            OVERRIDE_READ_FAILED, f"could not read the workspace override: {stored.message}"
        )
        return TraceEntry(
            rung,
            RungStatus.FAILED,
            "the stored override could not be read; an unreadable override might have said"
            " anything, so later rungs are not consulted",
        )
    if stored is None:
        return _NO_OVERRIDE
    mode = recognize_mode(stored)
    if mode is None:
        why = (
            "stored override is empty: inherit"
            if stored == ""
            else f"stored override {stored!r} is not a mode ({_ALLOWED}): ignored"
        )
        return TraceEntry(rung, RungStatus.SKIPPED, why)
    state.override = mode
    state.decide(rung, mode, DecisionSource.WORKSPACE_OVERRIDE)
    return TraceEntry(rung, RungStatus.DECIDED, f"stored override is {mode.value!r}")


def _org_default(state: _Resolution) -> TraceEntry:
    rung = RungName.ORG_DEFAULT
    org_default = state.org_default
    if org_default.raw is None:
        return _NO_ORG_DEFAULT_CONFIGURED
    if org_default.recognized is None:
        why = (
            "org default is empty"
            if not org_default.raw.strip()
            else f"org default {org_default.raw!r} is not a mode ({_ALLOWED}): ignored"
        )
        return TraceEntry(rung, RungStatus.SKIPPED, why)
    mode = org_default.recognized
    if state.policy.own_key_wins_over_org_default:
        provider = state.own_credential_present()
        if provider is not None:
            return TraceEntry(
                rung,
                RungStatus.SKIPPED,
                f"org default {mode.value!r} yields: provider {provider!r} has its own credential"
                " and the policy says own_key_wins_over_org_default",
            )
    state.decide(rung, mode, DecisionSource.ORG_DEFAULT)
    if org_default.raw == mode.value:
        return TraceEntry(rung, RungStatus.DECIDED, f"org default is {mode.value!r}")
    return TraceEntry(
        rung, RungStatus.DECIDED, f"org default {org_default.raw!r} normalizes to {mode.value!r}"
    )


def _derived_provider(state: _Resolution) -> TraceEntry:
    rung = RungName.DERIVED_PROVIDER
    registry = state.registry
    result = state.derive()
    if result.provider is None or registry is None:
        if result.outcome is DerivationOutcome.REGISTRY_UNAVAILABLE:
            state.error = DecisionError(REGISTRY_UNAVAILABLE, result.detail)
        return TraceEntry(rung, RungStatus.FAILED, f"{result.outcome.value}: {result.detail}")
    if result.provider == registry.platform_provider:
        mode = BillingMode.PLATFORM_MANAGED
        role = "the platform provider"
    else:
        mode = BillingMode.BYOK
        role = "a vendor provider"
    state.decide(rung, mode, DecisionSource.DERIVED_PROVIDER)
    return TraceEntry(rung, RungStatus.DECIDED, f"{result.detail}; {role} decides {mode.value!r}")


def _deployment_default(state: _Resolution) -> TraceEntry:
    rung = RungName.DEPLOYMENT_DEFAULT
    proxy = state.proxy_configured
    mode = deployment_default(proxy)
    setting = "metering proxy configured" if proxy else "no metering proxy (self-host)"
    if state.override_unreadable:
        state.decide(rung, mode, DecisionSource.CONSTANT_FALLBACK)
        return TraceEntry(
            rung, RungStatus.DECIDED, f"fail closed after the override read failure: {setting}"
        )
    state.decide(rung, mode, DecisionSource.DERIVED_DEFAULT)
    return TraceEntry(rung, RungStatus.DECIDED, f"no earlier rung decided: {setting}")


Rung = Callable[[_Resolution], TraceEntry]

RUNGS: dict[RungName, Rung] = {
    RungName.WORKSPACE_OVERRIDE: _workspace_override,
    RungName.ORG_DEFAULT: _org_default,
    RungName.DERIVED_PROVIDER: _derived_provider,
    RungName.DEPLOYMENT_DEFAULT: _deployment_default,
}

_NOT_CONSULTED = {
    (rung, decider): TraceEntry(rung, RungStatus.SKIPPED, f"not consulted: {decider.value} decided")
    for rung in RungName
    for decider in RungName
}
_SKIPPED_UNREADABLE = {
    rung: TraceEntry(rung, RungStatus.SKIPPED, "not consulted: the override could not be read")
    for rung in RungName
}


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
        inputs.auth_env,
        inputs.proxy_configured,
        registry,
        policy,
    )
    return BillingDecision(inputs.workspace_id, outcome)


# The outcome depends on the workspace id only through whether there is one, so a fleet's many
# workspaces share a few thousand outcomes. Memoizing a pure function changes no result.
@lru_cache(maxsize=16384)
def _run_chain(
    has_workspace_id: bool,
    override: str | OverrideReadFailure | None,
    org_default: str | None,
    runtime: str | None,
    model: str | None,
    auth_env: frozenset[str],
    proxy_configured: bool,
    registry: CompiledRegistry | None,
    policy: CompiledPolicy,
) -> ChainOutcome:
    state = _Resolution(
        has_workspace_id,
        override,
        org_default,
        runtime,
        model,
        auth_env,
        proxy_configured,
        registry,
        policy,
    )
    trace: list[TraceEntry] = []
    for rung_name in policy.rungs:
        decided_by = state.decided_by
        if decided_by is not None:
            trace.append(_NOT_CONSULTED[rung_name, decided_by])
        elif state.override_unreadable and rung_name is not RungName.DEPLOYMENT_DEFAULT:
            trace.append(_SKIPPED_UNREADABLE[rung_name])
        else:
            trace.append(RUNGS[rung_name](state))
    return _outcome(state, tuple(trace))


def clear_resolution_memo() -> None:
    """Forget memoized outcomes (benchmarks use it to measure the full chain)."""
    _run_chain.cache_clear()


def _outcome(state: _Resolution, trace: tuple[TraceEntry, ...]) -> ChainOutcome:
    result = state.derivation
    if result is None:
        derivation = _NOT_ATTEMPTED_FALLBACK if state.override_unreadable else _NOT_ATTEMPTED
        provider = None
    else:
        derivation = Derivation(result.outcome, result.detail)
        if result.provider is not None:
            provider = result.provider
        elif state.model and state.model.strip():
            provider = state.model
        else:
            provider = None
    mode = state.mode
    source = state.source
    # Every chain ends in the deployment default, which always decides.
    assert mode is not None
    assert source is not None
    return ChainOutcome(
        mode=mode,
        source=source,
        workspace_override=state.override,
        org_default=state.org_default,
        provider=provider,
        derivation=derivation,
        trace=trace,
        error=state.error,
        deployment=_DEPLOYMENTS[state.proxy_configured],
        versions=Versions(
            policy=state.policy.version,
            registry=None if state.registry is None else state.registry.version,
        ),
    )
