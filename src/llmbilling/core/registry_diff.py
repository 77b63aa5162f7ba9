"""Compare two compiled registries: what the documents change, and which inputs derive
differently. Pure: both registries arrive compiled, a fleet arrives already grouped.

"Mode" here is what the derivation rungs decide (spec §2 rungs 3 and 4): the platform provider
``platform_managed``, any other provider ``byok``, a failed derivation the deployment default.
An override or an org default may mask it for a given workspace; ``llmbilling whatif
--registry`` decides the whole chain.

Probes (:func:`probe_models`): every exact id and alias either registry names, every prefix
and the prefix plus :data:`PROBE_SUFFIX`, each on every runtime of either registry, with no
credentials, with each provider's credential names (one provider at a time) and with each
credential name alone. Credentials only matter when several providers tie: a change is listed
under credential names only when they make a difference to it, and under just the names among
them that can (the tied providers'), so each input is listed once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from llmbilling.core.derivation import DerivationResult, derive_provider
from llmbilling.core.modes import BillingMode, DerivationOutcome, deployment_default
from llmbilling.core.registry import CompiledRegistry, ProviderInfo, Rule, RuleKind, RuntimeInfo

PROBE_SUFFIX = "x"
"""Appended to a prefix to probe a model the prefix covers but no rule names."""

_Entry = TypeVar("_Entry", ProviderInfo, RuntimeInfo)

FleetKey = tuple[str | None, str | None, frozenset[str]]
"""(runtime, effective model, credential names) of stored workspaces."""


@dataclass(frozen=True, slots=True)
class DerivedMode:
    """What one registry derives for one input: provider (None when derivation failed),
    outcome, and the mode the derivation rungs decide."""

    provider: str | None
    outcome: DerivationOutcome
    mode: BillingMode

    def to_dict(self) -> dict[str, str | None]:
        return {"provider": self.provider, "outcome": self.outcome.value, "mode": self.mode.value}


def derive_mode(
    registry: CompiledRegistry,
    runtime: str | None,
    model: str | None,
    auth_env: frozenset[str],
    *,
    proxy_configured: bool,
) -> DerivedMode:
    """The provider, outcome and derived mode of one input under ``registry``."""
    return _derived(registry, derive_provider(registry, runtime, model, auth_env), proxy_configured)


def _derived(
    registry: CompiledRegistry, result: DerivationResult, proxy_configured: bool
) -> DerivedMode:
    if result.outcome is DerivationOutcome.OK:
        mode = (
            BillingMode.PLATFORM_MANAGED
            if result.provider == registry.platform_provider
            else BillingMode.BYOK
        )
    else:
        mode = deployment_default(proxy_configured)
    return DerivedMode(result.provider, result.outcome, mode)


@dataclass(frozen=True, slots=True)
class InputChange:
    """An input that derives differently: ``auth_env`` holds the credential names present."""

    runtime: str | None
    model: str | None
    auth_env: tuple[str, ...]
    old: DerivedMode
    new: DerivedMode

    @property
    def mode_changed(self) -> bool:
        return self.old.mode != self.new.mode

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "model": self.model,
            "auth_env": list(self.auth_env),
            "old": self.old.to_dict(),
            "new": self.new.to_dict(),
            "mode_changed": self.mode_changed,
        }


@dataclass(frozen=True, slots=True)
class RuleChange:
    """The rules that apply to one provider on one runtime, added and removed."""

    runtime: str
    provider: str
    added: tuple[Rule, ...]
    removed: tuple[Rule, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "provider": self.provider,
            "added": [_rule_dict(rule) for rule in self.added],
            "removed": [_rule_dict(rule) for rule in self.removed],
        }


def _rule_dict(rule: Rule) -> dict[str, str]:
    return {"kind": rule.kind.value, "text": rule.text}


class ChangeKind(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field of a provider or runtime, before and after (None: the entry is absent).

    List-valued fields (credential names, endpoint names, native providers) also say which
    members were added and removed; an order change alone shows in ``old``/``new`` only.
    """

    field: str
    old: Any
    new: Any

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"old": self.old, "new": self.new}
        if isinstance(self.old, list) or isinstance(self.new, list):
            old_members, new_members = self.old or [], self.new or []
            found["added"] = [m for m in new_members if m not in old_members]
            found["removed"] = [m for m in old_members if m not in new_members]
        return found


@dataclass(frozen=True, slots=True)
class EntryChange:
    """A provider or a runtime added, removed, or with changed fields."""

    id: str
    change: ChangeKind
    fields: tuple[FieldChange, ...]

    def to_dict(self, key: str) -> dict[str, Any]:
        return {
            key: self.id,
            "change": self.change.value,
            "fields": {field.field: field.to_dict() for field in self.fields},
        }


@dataclass(frozen=True, slots=True)
class RegistryDiff:
    rule_changes: tuple[RuleChange, ...]
    provider_changes: tuple[EntryChange, ...]
    runtime_changes: tuple[EntryChange, ...]
    input_changes: tuple[InputChange, ...]

    @property
    def has_changes(self) -> bool:
        return bool(
            self.rule_changes or self.provider_changes or self.runtime_changes or self.input_changes
        )

    @property
    def mode_changed(self) -> bool:
        return any(change.mode_changed for change in self.input_changes)


def diff_registries(
    old: CompiledRegistry, new: CompiledRegistry, *, proxy_configured: bool
) -> RegistryDiff:
    """Everything that differs between ``old`` and ``new``, and the probe inputs whose
    derived provider, outcome or mode changes (see the module docstring)."""
    return RegistryDiff(
        rule_changes=tuple(_rule_changes(old, new)),
        provider_changes=tuple(_entry_changes(old.providers, new.providers, _provider_fields)),
        runtime_changes=tuple(_entry_changes(old.runtimes, new.runtimes, _runtime_fields)),
        input_changes=tuple(probe_changes(old, new, proxy_configured=proxy_configured)),
    )


def _rule_changes(old: CompiledRegistry, new: CompiledRegistry) -> Iterable[RuleChange]:
    for runtime in sorted(old.rules.keys() | new.rules.keys()):
        old_rules = old.rules.get(runtime, {})
        new_rules = new.rules.get(runtime, {})
        for provider in sorted(old_rules.keys() | new_rules.keys()):
            before = old_rules.get(provider, frozenset())
            after = new_rules.get(provider, frozenset())
            if before != after:
                yield RuleChange(
                    runtime, provider, tuple(sorted(after - before)), tuple(sorted(before - after))
                )


def _provider_fields(provider: ProviderInfo) -> dict[str, Any]:
    return {
        "name": provider.name,
        "platform": provider.platform,
        "auth_env": sorted(provider.auth_env),
        "endpoint_env": sorted(provider.endpoint_env),
        "pattern": provider.pattern,
    }


def _runtime_fields(runtime: RuntimeInfo) -> dict[str, Any]:
    return {
        "api": runtime.api,
        "proxy_env": runtime.proxy_env.model_dump(mode="json"),
        "native_providers": list(runtime.native_providers),
    }


def _entry_changes(
    old: Mapping[str, _Entry],
    new: Mapping[str, _Entry],
    fields_of: Callable[[_Entry], dict[str, Any]],
) -> Iterable[EntryChange]:
    for entry_id in sorted(old.keys() | new.keys()):
        before = fields_of(old[entry_id]) if entry_id in old else {}
        after = fields_of(new[entry_id]) if entry_id in new else {}
        if before == after:
            continue
        kind = (
            ChangeKind.ADDED
            if not before
            else ChangeKind.REMOVED
            if not after
            else ChangeKind.CHANGED
        )
        fields = tuple(
            FieldChange(name, before.get(name), after.get(name))
            for name in (after or before)
            if before.get(name) != after.get(name)
        )
        yield EntryChange(entry_id, kind, fields)


def probe_models(registries: Sequence[CompiledRegistry]) -> list[str]:
    """Every rule text of ``registries`` (lowercased, as compiled), and each prefix plus
    :data:`PROBE_SUFFIX`, sorted."""
    texts: set[str] = set()
    for registry in registries:
        for per_provider in registry.rules.values():
            for rules in per_provider.values():
                for rule in rules:
                    texts.add(rule.text)
                    if rule.kind is RuleKind.PREFIX:
                        texts.add(rule.text + PROBE_SUFFIX)
    return sorted(texts)


def credential_sets(registries: Sequence[CompiledRegistry]) -> list[frozenset[str]]:
    """Each provider's credential names (one provider at a time), and each credential name
    alone, without repeats: a name one registry adds to a provider is probed by itself too."""
    found = {
        provider.auth_env for registry in registries for provider in registry.providers.values()
    }
    found |= {frozenset([name]) for registry in registries for name in registry.all_auth_env}
    return sorted(found, key=lambda names: (len(names), sorted(names)))


def probe_changes(
    old: CompiledRegistry, new: CompiledRegistry, *, proxy_configured: bool
) -> list[InputChange]:
    """The probe inputs that derive differently under ``old`` and ``new``, deduplicated."""
    registries = (old, new)
    runtimes = sorted(old.runtimes.keys() | new.runtimes.keys())
    models = probe_models(registries)
    credentials = credential_sets(registries)
    changes: list[InputChange] = []
    for runtime in runtimes:
        for model in models:
            changes.extend(_changes_of(old, new, runtime, model, credentials, proxy_configured))
    return changes


def _changes_of(
    old: CompiledRegistry,
    new: CompiledRegistry,
    runtime: str,
    model: str,
    credentials: Sequence[frozenset[str]],
    proxy_configured: bool,
) -> Iterable[InputChange]:
    old_result = derive_provider(old, runtime, model, frozenset())
    new_result = derive_provider(new, runtime, model, frozenset())
    base = (
        _derived(old, old_result, proxy_configured),
        _derived(new, new_result, proxy_configured),
    )
    if base[0] != base[1]:
        yield InputChange(runtime, model, (), *base)
    # Credentials split ties only: the names that can matter are the tied providers'.
    deciding = _tied_credentials(old, old_result) | _tied_credentials(new, new_result)
    if not deciding:
        return
    seen: set[frozenset[str]] = set()
    for names in credentials:
        present = names & deciding
        if not present or present in seen:
            continue
        seen.add(present)
        pair = (
            derive_mode(old, runtime, model, present, proxy_configured=proxy_configured),
            derive_mode(new, runtime, model, present, proxy_configured=proxy_configured),
        )
        if pair[0] != pair[1] and pair != base:
            yield InputChange(runtime, model, tuple(sorted(present)), *pair)


def _tied_credentials(registry: CompiledRegistry, result: DerivationResult) -> frozenset[str]:
    if len(result.candidates) < 2:
        return frozenset()
    return frozenset().union(
        *(registry.providers[candidate.provider].auth_env for candidate in result.candidates)
    )


@dataclass(frozen=True, slots=True)
class FleetChange:
    """A group of stored workspaces with the same inputs that derives differently."""

    change: InputChange
    workspaces: int

    def to_dict(self) -> dict[str, Any]:
        return {**self.change.to_dict(), "workspaces": self.workspaces}


@dataclass(frozen=True, slots=True)
class FleetDiff:
    """The stored fleet under both registries: ``groups`` distinct (runtime, model,
    credential names) of ``workspaces`` readable workspaces; ``unreadable`` workspaces whose
    model could not be read (an undecryptable model secret) are in no group."""

    groups: int
    workspaces: int
    unreadable: int
    changes: tuple[FleetChange, ...]

    @property
    def mode_changed(self) -> bool:
        return any(change.change.mode_changed for change in self.changes)

    @property
    def changed_workspaces(self) -> int:
        return sum(change.workspaces for change in self.changes)

    @property
    def mode_changed_workspaces(self) -> int:
        return sum(change.workspaces for change in self.changes if change.change.mode_changed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": self.groups,
            "workspaces": self.workspaces,
            "unreadable": self.unreadable,
            "changed_workspaces": self.changed_workspaces,
            "mode_changed_workspaces": self.mode_changed_workspaces,
            "changes": [change.to_dict() for change in self.changes],
        }


def diff_fleet(
    old: CompiledRegistry,
    new: CompiledRegistry,
    groups: Mapping[FleetKey, int],
    *,
    unreadable: int = 0,
    proxy_configured: bool,
) -> FleetDiff:
    """Which groups of stored workspaces derive differently; most workspaces first."""
    changes: list[FleetChange] = []
    for (runtime, model, auth_env), count in groups.items():
        before = derive_mode(old, runtime, model, auth_env, proxy_configured=proxy_configured)
        after = derive_mode(new, runtime, model, auth_env, proxy_configured=proxy_configured)
        if before != after:
            change = InputChange(runtime, model, tuple(sorted(auth_env)), before, after)
            changes.append(FleetChange(change, count))
    changes.sort(
        key=lambda c: (
            -c.workspaces,
            c.change.runtime or "",
            c.change.model or "",
            c.change.auth_env,
        )
    )
    return FleetDiff(
        groups=len(groups),
        workspaces=sum(groups.values()),
        unreadable=unreadable,
        changes=tuple(changes),
    )
