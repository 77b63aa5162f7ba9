"""Fleet what-if: each workspace decided under the current and a proposed configuration. Pure.

The store streams workspaces in; :class:`WhatIfTally` folds comparisons into counts and
bounded samples, so memory stays flat in fleet size. Danger classes name changes that would
hurt at the next provision or bill: they are what a deploy gate fails on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, TypeVar

from llmbilling.core.decision import ChainOutcome, OverrideReadFailure, ResolutionInput
from llmbilling.core.modes import BillingMode
from llmbilling.core.policy import CompiledPolicy
from llmbilling.core.provisioning import byok_credential_missing, derived_vendor
from llmbilling.core.registry import CompiledRegistry
from llmbilling.core.resolve import override_expired_at, relevant_auth_env, resolve_billing_mode


@dataclass(frozen=True, slots=True, eq=False)
class Configuration:
    """What decides: a policy and a registry (None = the registry could not be loaded)."""

    policy: CompiledPolicy
    registry: CompiledRegistry | None


Transition = tuple[str, str]


class DangerClass(StrEnum):
    TO_BYOK_WITHOUT_CREDENTIAL = "to_byok_without_credential"
    """Would newly fail MISSING_BYOK_CREDENTIAL at the next provision (the #2608 class)."""
    TO_PLATFORM_WITHOUT_PROXY = "to_platform_without_proxy"
    """Would newly fail MISSING_PLATFORM_PROXY at the next provision."""
    BYOK_TO_PLATFORM = "byok_to_platform"
    """The platform starts paying for usage the customer paid for."""
    TO_DISABLED = "to_disabled"
    """The workspace loses LLM access."""
    STARTS_PAYING = "starts_paying"
    """A disabled workspace gets LLM access again (``platform_managed`` or ``byok``): someone
    starts paying for usage that was switched off."""


PAYING_MODES = frozenset({BillingMode.PLATFORM_MANAGED, BillingMode.BYOK})


@dataclass(frozen=True, slots=True, eq=False)
class Change:
    """What a comparison amounts to for a report: the mode and source transitions, as
    (before, after) wire values, and the danger classes. Few distinct values per fleet, each
    one shared object (see :func:`_change`), so it is compared and hashed by identity."""

    mode_transition: Transition
    source_transition: Transition
    dangers: tuple[DangerClass, ...]

    @property
    def mode_changed(self) -> bool:
        return self.mode_transition[0] != self.mode_transition[1]

    @property
    def source_changed(self) -> bool:
        return self.source_transition[0] != self.source_transition[1]


@dataclass(frozen=True, slots=True)
class Comparison:
    """One input decided under both configurations, and what changed."""

    current: ChainOutcome
    proposed: ChainOutcome
    change: Change


def compare(inputs: ResolutionInput, current: Configuration, proposed: Configuration) -> Comparison:
    """Decide ``inputs`` under both configurations and classify the change."""
    return _compare(
        bool(inputs.workspace_id),
        inputs.override,
        override_expired_at(inputs.override_expires_at, inputs.now),
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
    expired_at: datetime | None,
    org_default: str | None,
    runtime: str | None,
    model: str | None,
    auth_env: frozenset[str],
    proxy_configured: bool,
    current: Configuration,
    proposed: Configuration,
) -> Comparison:
    # Outcomes depend on the workspace id only through whether there is one, and on now only
    # through whether the override has expired (an expiry without a now counts as passed).
    inputs = ResolutionInput(
        workspace_id="any-workspace" if has_workspace_id else None,
        override=override,
        override_expires_at=expired_at,
        org_default=org_default,
        runtime=runtime,
        model=model,
        auth_env=auth_env,
        proxy_configured=proxy_configured,
    )
    before = resolve_billing_mode(inputs, current.registry, current.policy).outcome
    after = resolve_billing_mode(inputs, proposed.registry, proposed.policy).outcome
    change = change_between(
        before,
        after,
        before_auth_env=auth_env,
        after_auth_env=auth_env,
        before_proxy=proxy_configured,
        after_proxy=proxy_configured,
        current=current,
        proposed=proposed,
    )
    return Comparison(before, after, change)


def change_between(
    before: ChainOutcome,
    after: ChainOutcome,
    *,
    before_auth_env: frozenset[str],
    after_auth_env: frozenset[str],
    before_proxy: bool,
    after_proxy: bool,
    current: Configuration,
    proposed: Configuration,
) -> Change:
    """The transitions and danger classes between two outcomes, each judged with its own
    side's credential names and proxy (a what-if keeps them; a write change may move them)."""
    return _change(
        (before.mode.value, after.mode.value),
        (before.source.value, after.source.value),
        _dangers(
            before,
            after,
            before_auth_env,
            after_auth_env,
            before_proxy,
            after_proxy,
            current,
            proposed,
        ),
    )


@lru_cache(maxsize=1024)
def _change(mode: Transition, source: Transition, dangers: tuple[DangerClass, ...]) -> Change:
    # One shared object per distinct change: tallies and memos then hold a few of them.
    return Change(mode, source, dangers)


def _dangers(
    before: ChainOutcome,
    after: ChainOutcome,
    before_auth_env: frozenset[str],
    after_auth_env: frozenset[str],
    before_proxy: bool,
    after_proxy: bool,
    current: Configuration,
    proposed: Configuration,
) -> tuple[DangerClass, ...]:
    found: list[DangerClass] = []
    if _provision_fails_for_credential(after, after_auth_env, proposed) and not (
        _provision_fails_for_credential(before, before_auth_env, current)
    ):
        found.append(DangerClass.TO_BYOK_WITHOUT_CREDENTIAL)
    # "Newly fails for want of a proxy": platform without one after, and not so before.
    if (not after_proxy and after.mode is BillingMode.PLATFORM_MANAGED) and not (
        not before_proxy and before.mode is BillingMode.PLATFORM_MANAGED
    ):
        found.append(DangerClass.TO_PLATFORM_WITHOUT_PROXY)
    if before.mode is BillingMode.BYOK and after.mode is BillingMode.PLATFORM_MANAGED:
        found.append(DangerClass.BYOK_TO_PLATFORM)
    if after.mode is BillingMode.DISABLED and before.mode is not BillingMode.DISABLED:
        found.append(DangerClass.TO_DISABLED)
    if before.mode is BillingMode.DISABLED and after.mode in PAYING_MODES:
        found.append(DangerClass.STARTS_PAYING)
    return tuple(found)


def _provision_fails_for_credential(
    outcome: ChainOutcome, auth_env: frozenset[str], configuration: Configuration
) -> bool:
    """Whether a byok provision would fail for want of a credential, judged by names only."""
    registry = configuration.registry
    if outcome.mode is not BillingMode.BYOK or registry is None:
        return False
    provider = derived_vendor(outcome.source, outcome.provider, registry)
    return byok_credential_missing(provider, auth_env, registry)


@dataclass(frozen=True, slots=True)
class WhatIfReport:
    """Counts and samples of a what-if run. Samples are the first workspaces seen."""

    total: int
    changed: int
    mode_transitions: dict[Transition, int]
    source_transitions: dict[Transition, int]
    dangers: dict[DangerClass, int]
    per_org_mode_transitions: dict[str, dict[Transition, int]]
    per_org_changed: dict[str, int]
    per_org_dangers: dict[str, dict[DangerClass, int]]
    mode_samples: dict[Transition, tuple[str, ...]]
    danger_samples: dict[DangerClass, tuple[str, ...]]
    current_versions: tuple[str, str | None]
    proposed_versions: tuple[str, str | None]

    @property
    def has_danger(self) -> bool:
        return any(self.dangers.values())

    def to_document(self) -> dict[str, Any]:
        """The report's wire shape, in plain JSON types; transitions sorted by count, largest
        first."""
        return {
            "current": _versions_document(self.current_versions),
            "proposed": _versions_document(self.proposed_versions),
            "total": self.total,
            "changed": self.changed,
            "dangerous": self.has_danger,
            "dangers": {danger.value: self.dangers.get(danger, 0) for danger in DangerClass},
            "danger_samples": {
                danger.value: list(self.danger_samples.get(danger, ())) for danger in DangerClass
            },
            "mode_transitions": [
                {
                    "from": old,
                    "to": new,
                    "count": count,
                    "samples": list(self.mode_samples.get((old, new), ())),
                }
                for (old, new), count in by_count(self.mode_transitions)
            ],
            "source_transitions": [
                {"from": old, "to": new, "count": count}
                for (old, new), count in by_count(self.source_transitions)
            ],
            "per_org": [
                {
                    "org_id": org_id,
                    "workspaces": sum(transitions.values()),
                    "changed": self.per_org_changed.get(org_id, 0),
                    "mode_transitions": [
                        {"from": old, "to": new, "count": count}
                        for (old, new), count in by_count(transitions)
                    ],
                    "dangers": {
                        danger.value: self.per_org_dangers.get(org_id, {}).get(danger, 0)
                        for danger in DangerClass
                    },
                }
                for org_id, transitions in sorted(self.per_org_mode_transitions.items())
            ],
        }


def by_count(transitions: dict[Transition, int]) -> list[tuple[Transition, int]]:
    """Transitions with their counts, largest first (ties in transition order)."""
    return sorted(transitions.items(), key=lambda item: (-item[1], item[0]))


def _versions_document(versions: tuple[str, str | None]) -> dict[str, str | None]:
    return {"policy": versions[0], "registry": versions[1]}


class WhatIfTally:
    """Folds changes into a :class:`WhatIfReport`, keeping ``samples_per_class`` ids per
    changed mode transition and per danger class.

    Ids may be any hashable value (a store's raw id, say); ``format_id`` turns them into the
    report's text, once, when the report is made. Per row the tally bumps two counters, and
    holds only counts per distinct change and per org: memory does not grow with the fleet.
    """

    def __init__(
        self,
        current: Configuration,
        proposed: Configuration,
        samples_per_class: int = 20,
        format_id: Callable[[Hashable], str] = str,
    ) -> None:
        self._current = current
        self._proposed = proposed
        self._samples_per_class = samples_per_class
        self._format_id = format_id
        self.total = 0
        self._by_change: dict[Change, int] = {}
        self._org_modes: dict[Hashable, dict[Transition, int]] = {}
        self._org_changed: dict[Hashable, int] = {}
        self._org_dangers: dict[Hashable, dict[DangerClass, int]] = {}
        self._mode_samples: dict[Transition, list[Hashable]] = {}
        self._danger_samples: dict[DangerClass, list[Hashable]] = {}

    def add(self, org_id: Hashable, workspace_id: Hashable, change: Change) -> None:
        """One workspace of ``org_id``: counted, and offered as a sample."""
        self.add_many(org_id, change, 1)
        self.offer_sample(workspace_id, change)

    def add_many(self, org_id: Hashable, change: Change, count: int) -> None:
        """``count`` workspaces of ``org_id`` sharing ``change``: counted, never sampled
        (offer their samples with :meth:`offer_sample`)."""
        self.total += count
        by_change = self._by_change
        by_change[change] = by_change.get(change, 0) + count
        org_modes = self._org_modes.get(org_id)
        if org_modes is None:
            org_modes = self._org_modes[org_id] = {}
        transition = change.mode_transition
        org_modes[transition] = org_modes.get(transition, 0) + count
        if change.mode_changed or change.source_changed:
            self._org_changed[org_id] = self._org_changed.get(org_id, 0) + count
        for danger in change.dangers:
            org_dangers = self._org_dangers.setdefault(org_id, {})
            org_dangers[danger] = org_dangers.get(danger, 0) + count

    def offer_sample(self, workspace_id: Hashable, change: Change) -> None:
        """Keep ``workspace_id`` as a sample of its changed mode transition and of each of its
        danger classes while they hold fewer than ``samples_per_class``: the first offered
        stay, so offering in id order keeps the lowest ids."""
        if change.mode_changed:
            self._sample(self._mode_samples, change.mode_transition, workspace_id)
        for danger in change.dangers:
            self._sample(self._danger_samples, danger, workspace_id)

    def wants_samples(self, change: Change) -> bool:
        """Whether ``change`` is sampled at all (a changed mode or a danger)."""
        return change.mode_changed or bool(change.dangers)

    def _sample(
        self, samples: dict[_Key, list[Hashable]], key: _Key, workspace_id: Hashable
    ) -> None:
        bucket = samples.setdefault(key, [])
        if len(bucket) < self._samples_per_class:
            bucket.append(workspace_id)

    def report(self) -> WhatIfReport:
        modes: Counter[Transition] = Counter()
        sources: Counter[Transition] = Counter()
        dangers: Counter[DangerClass] = Counter()
        changed = 0
        for change, count in self._by_change.items():
            modes[change.mode_transition] += count
            sources[change.source_transition] += count
            for danger in change.dangers:
                dangers[danger] += count
            if change.mode_changed or change.source_changed:
                changed += count
        name = self._format_id
        return WhatIfReport(
            total=self.total,
            changed=changed,
            mode_transitions=dict(modes),
            source_transitions=dict(sources),
            dangers={danger: dangers.get(danger, 0) for danger in DangerClass},
            per_org_mode_transitions={name(o): dict(c) for o, c in self._org_modes.items()},
            per_org_changed={name(o): count for o, count in self._org_changed.items()},
            per_org_dangers={name(o): dict(c) for o, c in self._org_dangers.items()},
            mode_samples={k: tuple(map(name, ids)) for k, ids in self._mode_samples.items()},
            danger_samples={k: tuple(map(name, ids)) for k, ids in self._danger_samples.items()},
            current_versions=_versions(self._current),
            proposed_versions=_versions(self._proposed),
        )


_Key = TypeVar("_Key")


def _versions(configuration: Configuration) -> tuple[str, str | None]:
    registry = configuration.registry
    return (configuration.policy.version, None if registry is None else registry.version)
