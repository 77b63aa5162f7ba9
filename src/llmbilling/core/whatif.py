"""Fleet what-if: each workspace decided under the current and a proposed configuration. Pure.

The store streams workspaces in; :class:`WhatIfTally` folds comparisons into counts and
bounded samples, so memory stays flat in fleet size. Danger classes name changes that would
hurt at the next provision or bill: they are what a deploy gate fails on.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import TypeVar

from llmbilling.core.decision import ChainOutcome, OverrideReadFailure, ResolutionInput
from llmbilling.core.modes import BillingMode
from llmbilling.core.policy import CompiledPolicy
from llmbilling.core.provisioning import byok_credential_gap, derived_vendor
from llmbilling.core.registry import CompiledRegistry
from llmbilling.core.resolve import relevant_auth_env, resolve_billing_mode


@dataclass(frozen=True, slots=True, eq=False)
class Configuration:
    """What decides: a policy and a registry (None = the registry could not be loaded)."""

    policy: CompiledPolicy
    registry: CompiledRegistry | None


class DangerClass(StrEnum):
    TO_BYOK_WITHOUT_CREDENTIAL = "to_byok_without_credential"
    """Would newly fail MISSING_BYOK_CREDENTIAL at the next provision (the #2608 class)."""
    TO_PLATFORM_WITHOUT_PROXY = "to_platform_without_proxy"
    """Would newly fail MISSING_PLATFORM_PROXY at the next provision."""
    BYOK_TO_PLATFORM = "byok_to_platform"
    """The platform starts paying for usage the customer paid for."""
    TO_DISABLED = "to_disabled"
    """The workspace loses LLM access."""


@dataclass(frozen=True, slots=True)
class Comparison:
    current: ChainOutcome
    proposed: ChainOutcome
    dangers: tuple[DangerClass, ...]

    @property
    def mode_changed(self) -> bool:
        return self.current.mode is not self.proposed.mode

    @property
    def source_changed(self) -> bool:
        return self.current.source is not self.proposed.source


def compare(inputs: ResolutionInput, current: Configuration, proposed: Configuration) -> Comparison:
    """Decide ``inputs`` under both configurations and classify the change."""
    return _compare(
        bool(inputs.workspace_id),
        inputs.override,
        inputs.org_default,
        inputs.runtime,
        inputs.model,
        relevant_auth_env(inputs.auth_env, current.registry)
        | relevant_auth_env(inputs.auth_env, proposed.registry),
        inputs.proxy_configured,
        current,
        proposed,
    )


# Like the resolver's memo: a fleet has few distinct inputs, so most rows are a dict probe.
@lru_cache(maxsize=16384)
def _compare(
    has_workspace_id: bool,
    override: str | OverrideReadFailure | None,
    org_default: str | None,
    runtime: str | None,
    model: str | None,
    auth_env: frozenset[str],
    proxy_configured: bool,
    current: Configuration,
    proposed: Configuration,
) -> Comparison:
    # Outcomes depend on the workspace id only through whether there is one.
    inputs = ResolutionInput(
        workspace_id="any-workspace" if has_workspace_id else None,
        override=override,
        org_default=org_default,
        runtime=runtime,
        model=model,
        auth_env=auth_env,
        proxy_configured=proxy_configured,
    )
    before = resolve_billing_mode(inputs, current.registry, current.policy).outcome
    after = resolve_billing_mode(inputs, proposed.registry, proposed.policy).outcome
    return Comparison(
        before, after, _dangers(before, after, auth_env, proxy_configured, current, proposed)
    )


def _dangers(
    before: ChainOutcome,
    after: ChainOutcome,
    auth_env: frozenset[str],
    proxy_configured: bool,
    current: Configuration,
    proposed: Configuration,
) -> tuple[DangerClass, ...]:
    found: list[DangerClass] = []
    if _provision_fails_for_credential(after, auth_env, proposed) and not (
        _provision_fails_for_credential(before, auth_env, current)
    ):
        found.append(DangerClass.TO_BYOK_WITHOUT_CREDENTIAL)
    if (
        not proxy_configured
        and after.mode is BillingMode.PLATFORM_MANAGED
        and before.mode is not BillingMode.PLATFORM_MANAGED
    ):
        found.append(DangerClass.TO_PLATFORM_WITHOUT_PROXY)
    if before.mode is BillingMode.BYOK and after.mode is BillingMode.PLATFORM_MANAGED:
        found.append(DangerClass.BYOK_TO_PLATFORM)
    if after.mode is BillingMode.DISABLED and before.mode is not BillingMode.DISABLED:
        found.append(DangerClass.TO_DISABLED)
    return tuple(found)


def _provision_fails_for_credential(
    outcome: ChainOutcome, auth_env: frozenset[str], configuration: Configuration
) -> bool:
    """Whether a byok provision would fail for want of a credential, judged by names only."""
    registry = configuration.registry
    if outcome.mode is not BillingMode.BYOK or registry is None:
        return False
    provider = derived_vendor(outcome.source, outcome.provider, registry)
    return byok_credential_gap(provider, auth_env, registry) is not None


def clear_comparison_memo() -> None:
    """Forget memoized comparisons (benchmarks use it)."""
    _compare.cache_clear()


Transition = tuple[str, str]
_Key = TypeVar("_Key")


@dataclass(frozen=True, slots=True)
class WhatIfReport:
    """Counts and samples of a what-if run. Samples are the first workspaces seen."""

    total: int
    changed: int
    mode_transitions: dict[Transition, int]
    source_transitions: dict[Transition, int]
    dangers: dict[DangerClass, int]
    per_org_mode_transitions: dict[str, dict[Transition, int]]
    per_org_dangers: dict[str, dict[DangerClass, int]]
    mode_samples: dict[Transition, tuple[str, ...]]
    danger_samples: dict[DangerClass, tuple[str, ...]]
    current_versions: tuple[str, str | None]
    proposed_versions: tuple[str, str | None]

    @property
    def has_danger(self) -> bool:
        return any(self.dangers.values())


class WhatIfTally:
    """Folds comparisons into a :class:`WhatIfReport`; keeps ``samples_per_class`` ids each."""

    def __init__(
        self, current: Configuration, proposed: Configuration, samples_per_class: int = 20
    ) -> None:
        self._current = current
        self._proposed = proposed
        self._samples_per_class = samples_per_class
        self.total = 0
        self._changed = 0
        self._mode: Counter[Transition] = Counter()
        self._source: Counter[Transition] = Counter()
        self._dangers: Counter[DangerClass] = Counter()
        self._org_mode: dict[str, Counter[Transition]] = {}
        self._org_dangers: dict[str, Counter[DangerClass]] = {}
        self._mode_samples: dict[Transition, list[str]] = {}
        self._danger_samples: dict[DangerClass, list[str]] = {}

    def add(self, org_id: str, workspace_id: str, comparison: Comparison) -> None:
        self.total += 1
        mode = (comparison.current.mode.value, comparison.proposed.mode.value)
        source = (comparison.current.source.value, comparison.proposed.source.value)
        self._mode[mode] += 1
        self._source[source] += 1
        org_modes = self._org_mode.get(org_id)
        if org_modes is None:
            org_modes = self._org_mode[org_id] = Counter()
        org_modes[mode] += 1
        if comparison.mode_changed or comparison.source_changed:
            self._changed += 1
        if comparison.mode_changed:
            _sample(self._mode_samples, mode, workspace_id, self._samples_per_class)
        for danger in comparison.dangers:
            self._dangers[danger] += 1
            self._org_dangers.setdefault(org_id, Counter())[danger] += 1
            _sample(self._danger_samples, danger, workspace_id, self._samples_per_class)

    def report(self) -> WhatIfReport:
        return WhatIfReport(
            total=self.total,
            changed=self._changed,
            mode_transitions=dict(self._mode),
            source_transitions=dict(self._source),
            dangers={danger: self._dangers.get(danger, 0) for danger in DangerClass},
            per_org_mode_transitions={org: dict(c) for org, c in self._org_mode.items()},
            per_org_dangers={org: dict(c) for org, c in self._org_dangers.items()},
            mode_samples={key: tuple(ids) for key, ids in self._mode_samples.items()},
            danger_samples={key: tuple(ids) for key, ids in self._danger_samples.items()},
            current_versions=_versions(self._current),
            proposed_versions=_versions(self._proposed),
        )


def _sample(samples: dict[_Key, list[str]], key: _Key, workspace_id: str, limit: int) -> None:
    bucket = samples.setdefault(key, [])
    if len(bucket) < limit:
        bucket.append(workspace_id)


def _versions(configuration: Configuration) -> tuple[str, str | None]:
    registry = configuration.registry
    return (configuration.policy.version, None if registry is None else registry.version)
