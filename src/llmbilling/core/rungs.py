"""The rungs of the precedence chain (spec §2), each one unit behind one interface. Pure.

A rung reads what it needs from the :class:`Situation` of one evaluation and returns its
:class:`RungVerdict`: its trace entry and, when it decides, the mode and source. The chain
(:mod:`llmbilling.core.resolve`) looks rungs up in :data:`RUNGS` in the policy's order.

The override and org-default verdicts read few inputs with few distinct values across a fleet,
so each is memoized on exactly what it reads; the derivation is computed at most once per
evaluation, whichever rung asks first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Protocol

from llmbilling.core.decision import DecisionError, OrgDefault, OverrideReadFailure, TraceEntry
from llmbilling.core.derivation import Derived, derive
from llmbilling.core.modes import (
    MODE_VALUES,
    BillingMode,
    DecisionSource,
    DerivationOutcome,
    RungName,
    RungStatus,
    deployment_default,
    normalize_mode_text,
    recognize_mode,
    recognize_normalized_mode,
)
from llmbilling.core.registry import CompiledRegistry
from llmbilling.errors import ErrorCode

_ALLOWED = ", ".join(MODE_VALUES)


@dataclass(frozen=True, slots=True)
class RungVerdict:
    """What one rung concluded: its trace entry, the mode and source when it decided, and an
    error to travel beside the decision."""

    entry: TraceEntry
    mode: BillingMode | None = None
    source: DecisionSource | None = None
    error: DecisionError | None = None


class Situation:
    """One evaluation's inputs, and the derivation once a rung has asked for it."""

    __slots__ = (
        "_derived",
        "_detail",
        "auth_env",
        "expired_at",
        "has_workspace_id",
        "model",
        "org_default_raw",
        "override",
        "own_key_wins_over_org_default",
        "proxy_configured",
        "registry",
        "runtime",
    )

    def __init__(
        self,
        has_workspace_id: bool,
        override: str | OverrideReadFailure | None,
        org_default_raw: str | None,
        runtime: str | None,
        model: str | None,
        auth_env: frozenset[str],
        proxy_configured: bool,
        registry: CompiledRegistry | None,
        own_key_wins_over_org_default: bool,
        expired_at: datetime | None = None,
    ) -> None:
        self.has_workspace_id = has_workspace_id
        self.expired_at = expired_at
        self.override = override
        self.org_default_raw = org_default_raw
        self.runtime = runtime
        self.model = model
        self.auth_env = auth_env
        self.proxy_configured = proxy_configured
        self.registry = registry
        self.own_key_wins_over_org_default = own_key_wins_over_org_default
        self._derived: Derived | None = None
        self._detail: str | None = None

    @property
    def derived(self) -> Derived:
        """The derivation of (runtime, model, auth env), computed on first use."""
        derived = self._derived
        if derived is None:
            derived = self._derived = derive(self.registry, self.runtime, self.model, self.auth_env)
        return derived

    @property
    def derivation_detail(self) -> str:
        """The derivation's detail for this model, formatted on first use."""
        detail = self._detail
        if detail is None:
            detail = self._detail = self.derived.detail(self.model)
        return detail

    @property
    def was_derived(self) -> bool:
        return self._derived is not None


class Rung(Protocol):
    """One rung of the chain."""

    @property
    def name(self) -> RungName: ...

    def verdict(self, situation: Situation) -> RungVerdict:
        """This rung's conclusion for ``situation``; never raises."""
        ...


def _skipped(rung: RungName, why: str) -> RungVerdict:
    return RungVerdict(TraceEntry(rung, RungStatus.SKIPPED, why))


def _decided(rung: RungName, why: str, mode: BillingMode, source: DecisionSource) -> RungVerdict:
    return RungVerdict(TraceEntry(rung, RungStatus.DECIDED, why), mode, source)


# --- rung 1: the workspace override ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OverrideReading:
    """The override rung's verdict, the recognized mode, and the read failure if any."""

    verdict: RungVerdict
    recognized: BillingMode | None = None
    read_error: DecisionError | None = None


@lru_cache(maxsize=1024)
def read_override(
    has_workspace_id: bool,
    stored: str | OverrideReadFailure | None,
    expired_at: datetime | None = None,
) -> OverrideReading:
    """What the stored override says: a mode exactly as stored, or nothing (spec §2.1).

    ``expired_at`` is the override's expiry when it has passed (the caller compares it with
    its ``now``): an expired override no longer decides, and the trace says when it expired.
    """
    rung = RungName.WORKSPACE_OVERRIDE
    if not has_workspace_id:
        return OverrideReading(_skipped(rung, "no workspace id: pre-provision path"))
    if isinstance(stored, OverrideReadFailure):
        error = DecisionError(
            ErrorCode.OVERRIDE_READ_FAILED,
            f"could not read the workspace override: {stored.message}",
        )
        entry = TraceEntry(
            rung,
            RungStatus.FAILED,
            "the stored override could not be read; an unreadable override might have"
            " said anything, so later rungs are not consulted",
        )
        return OverrideReading(RungVerdict(entry, error=error), read_error=error)
    if stored is None:
        return OverrideReading(_skipped(rung, "no override stored: inherit"))
    mode = recognize_mode(stored)
    if mode is None:
        why = (
            "stored override is empty: inherit"
            if stored == ""
            else f"stored override {stored!r} is not a mode ({_ALLOWED}): ignored"
        )
        return OverrideReading(_skipped(rung, why))
    if expired_at is not None:
        return OverrideReading(
            _skipped(
                rung,
                f"stored override {mode.value!r} expired at {expired_at.isoformat()}: inherit",
            )
        )
    verdict = _decided(
        rung, f"stored override is {mode.value!r}", mode, DecisionSource.WORKSPACE_OVERRIDE
    )
    return OverrideReading(verdict, recognized=mode)


class WorkspaceOverrideRung:
    name = RungName.WORKSPACE_OVERRIDE

    def verdict(self, situation: Situation) -> RungVerdict:
        return read_override(
            situation.has_workspace_id, situation.override, situation.expired_at
        ).verdict


# --- rung 2: the org default -------------------------------------------------------------------


@lru_cache(maxsize=4096)
def read_org_default(raw: str | None) -> tuple[OrgDefault, RungVerdict]:
    """The normalized org default (ASCII white space trimmed, ASCII letters lowercased: see
    :func:`normalize_mode_text`; a mode or nothing) and its verdict."""
    rung = RungName.ORG_DEFAULT
    if raw is None:
        return OrgDefault(None, None), _skipped(rung, "no org default configured")
    mode = recognize_normalized_mode(raw)
    org_default = OrgDefault(raw, mode)
    if mode is None:
        why = (
            "org default is empty"
            if not normalize_mode_text(raw)
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


class OrgDefaultRung:
    name = RungName.ORG_DEFAULT

    def verdict(self, situation: Situation) -> RungVerdict:
        verdict = read_org_default(situation.org_default_raw)[1]
        if verdict.mode is None or not situation.own_key_wins_over_org_default:
            return verdict
        own = _own_credential_provider(situation)
        return verdict if own is None else _own_key_yields(verdict.mode, own)


def _own_credential_provider(situation: Situation) -> str | None:
    """The derived vendor provider when one of its own auth env names is present."""
    registry, provider = situation.registry, situation.derived.provider
    if registry is None or provider is None or provider == registry.platform_provider:
        return None
    return provider if registry.providers[provider].auth_env & situation.auth_env else None


# --- rung 3: the derived provider --------------------------------------------------------------

# The rung's own words after the derivation's detail, per platform-or-vendor.
_DECIDES = {
    True: (BillingMode.PLATFORM_MANAGED, "; the platform provider decides 'platform_managed'"),
    False: (BillingMode.BYOK, "; a vendor provider decides 'byok'"),
}


class DerivedProviderRung:
    name = RungName.DERIVED_PROVIDER

    def verdict(self, situation: Situation) -> RungVerdict:
        derived, registry = situation.derived, situation.registry
        detail = situation.derivation_detail
        if derived.provider is None or registry is None:
            error = (
                DecisionError(ErrorCode.REGISTRY_UNAVAILABLE, detail)
                if derived.outcome is DerivationOutcome.REGISTRY_UNAVAILABLE
                else None
            )
            entry = TraceEntry(self.name, RungStatus.FAILED, f"{derived.outcome.value}: {detail}")
            return RungVerdict(entry, error=error)
        mode, why = _DECIDES[derived.provider == registry.platform_provider]
        return _decided(self.name, detail + why, mode, DecisionSource.DERIVED_PROVIDER)


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


DEPLOYMENT_VERDICTS = {
    (proxy, failed): _deployment_verdict(proxy, failed)
    for proxy in (True, False)
    for failed in (True, False)
}
"""The deployment default's verdict per (proxy configured, after a read failure)."""


class DeploymentDefaultRung:
    name = RungName.DEPLOYMENT_DEFAULT

    def verdict(self, situation: Situation) -> RungVerdict:
        return DEPLOYMENT_VERDICTS[situation.proxy_configured, False]


RUNGS: Mapping[RungName, Rung] = {
    rung.name: rung
    for rung in (
        WorkspaceOverrideRung(),
        OrgDefaultRung(),
        DerivedProviderRung(),
        DeploymentDefaultRung(),
    )
}
"""Every rung, by name: what a policy's order is looked up in."""


def clear_rung_memos() -> None:
    """Forget the memoized override and org-default verdicts."""
    for memo in (read_override, read_org_default, _own_key_yields):
        memo.cache_clear()
