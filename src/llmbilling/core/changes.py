"""Changes to what decides, and their blast radius: decide before, decide after. Pure.

Every kind of change either transforms a workspace's stored facts (an override, an org
default, a secret's presence, the deployment's proxy or env org default) or swaps the
configuration (policy, registry). :func:`compare_facts` decides one workspace's facts before
and after a change with the resolver and classifies the difference with the what-if's danger
classes (:mod:`llmbilling.core.whatif`), so a preview and a fleet what-if are one engine.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Literal

from llmbilling.core.decision import ChainOutcome, OverrideReadFailure, ResolutionInput
from llmbilling.core.resolve import override_expired_at, relevant_auth_env, resolve_billing_mode
from llmbilling.core.whatif import Change, Configuration, change_between

SecretScope = Literal["org", "workspace"]


@dataclass(frozen=True, slots=True)
class StoredFacts:
    """What one workspace's decision is made from, as stored and as the deployment sets it.

    ``org_default`` is the org row's raw text (None: the org stores none, so the deployment's
    ``deployment_org_default`` applies, spec §5). Secret names are names only, per scope.
    ``model`` is the effective model already taken from the stored state. An unreadable
    state (an undecryptable model secret) has an :class:`OverrideReadFailure` override, as
    the read path's ``constant_fallback`` inputs do.
    """

    override: str | OverrideReadFailure | None
    override_expires_at: datetime | None
    org_default: str | None
    runtime: str | None
    model: str | None
    workspace_secret_names: frozenset[str]
    org_secret_names: frozenset[str]
    proxy_configured: bool
    deployment_org_default: str | None

    def resolution_input(self, workspace_id: str, now: datetime | None) -> ResolutionInput:
        """The core's input for these facts, exactly as the read path builds it
        (``service/resolve.py`` ``stored_inputs``)."""
        return ResolutionInput(
            workspace_id=workspace_id,
            override=self.override,
            org_default=self.org_default
            if self.org_default is not None
            else self.deployment_org_default,
            runtime=self.runtime,
            model=self.model,
            auth_env=self.workspace_secret_names | self.org_secret_names,
            proxy_configured=self.proxy_configured,
            override_expires_at=self.override_expires_at,
            now=now,
        )


class ChangeKind(StrEnum):
    WORKSPACE_OVERRIDE = "workspace_override"
    ORG_DEFAULT = "org_default"
    SECRET = "secret"
    DEPLOYMENT = "deployment"
    CONFIGURATION = "configuration"


@dataclass(frozen=True, slots=True)
class OverrideChange:
    """Set a workspace's override to ``mode`` (None: clear it, inherit), expiring at
    ``expires_at`` (None: never)."""

    workspace_id: str
    mode: str | None
    expires_at: datetime | None = None
    kind: ChangeKind = ChangeKind.WORKSPACE_OVERRIDE

    def apply_to(self, facts: StoredFacts) -> StoredFacts:
        return replace(facts, override=self.mode, override_expires_at=self.expires_at)


@dataclass(frozen=True, slots=True)
class OrgDefaultChange:
    """Set an org's default to ``mode`` (raw text as it will be stored; None: clear it)."""

    org_id: str
    mode: str | None
    kind: ChangeKind = ChangeKind.ORG_DEFAULT

    def apply_to(self, facts: StoredFacts) -> StoredFacts:
        return replace(facts, org_default=self.mode)


@dataclass(frozen=True, slots=True)
class SecretChange:
    """A secret named ``name`` comes to exist (``present``) or stops existing at one scope.

    Only the name matters to a decision: the value never enters a change."""

    scope: SecretScope
    owner_id: str
    name: str
    present: bool
    kind: ChangeKind = ChangeKind.SECRET

    def apply_to(self, facts: StoredFacts) -> StoredFacts:
        if self.scope == "workspace":
            names = facts.workspace_secret_names
            changed = names | {self.name} if self.present else names - {self.name}
            return replace(facts, workspace_secret_names=changed)
        names = facts.org_secret_names
        changed = names | {self.name} if self.present else names - {self.name}
        return replace(facts, org_secret_names=changed)


@dataclass(frozen=True, slots=True)
class DeploymentChange:
    """The deployment's proxy comes or goes (``proxy_configured``; None: as today) and/or its
    env org default (``MOLECULE_LLM_BILLING_MODE``) changes (only when
    ``changes_org_default``; ``org_default`` None then means unset)."""

    proxy_configured: bool | None = None
    changes_org_default: bool = False
    org_default: str | None = None
    kind: ChangeKind = ChangeKind.DEPLOYMENT

    def apply_to(self, facts: StoredFacts) -> StoredFacts:
        proxy = facts.proxy_configured if self.proxy_configured is None else self.proxy_configured
        org_default = self.org_default if self.changes_org_default else facts.deployment_org_default
        return replace(facts, proxy_configured=proxy, deployment_org_default=org_default)


@dataclass(frozen=True, slots=True, eq=False)
class ConfigurationChange:
    """The deployment's policy and/or registry are swapped: the facts stay, what decides
    them changes (``proposed``)."""

    proposed: Configuration
    kind: ChangeKind = ChangeKind.CONFIGURATION

    def apply_to(self, facts: StoredFacts) -> StoredFacts:
        return facts


WriteChange = OverrideChange | OrgDefaultChange | SecretChange
"""The changes a plan's apply commits through the store's write paths."""
AnyChange = WriteChange | DeploymentChange | ConfigurationChange


def facts_after(change: AnyChange, facts: StoredFacts) -> StoredFacts:
    """A workspace's facts once ``change`` is made. An unreadable state stays unreadable
    whatever is written (the read path would still fall back); only the deployment's share of
    it can move."""
    if isinstance(facts.override, OverrideReadFailure) and not isinstance(
        change, DeploymentChange | ConfigurationChange
    ):
        return facts
    return change.apply_to(facts)


def proposed_configuration(change: AnyChange, current: Configuration) -> Configuration:
    """What decides after ``change``: the proposed configuration of a swap, else today's."""
    return change.proposed if isinstance(change, ConfigurationChange) else current


@dataclass(frozen=True, slots=True)
class FactsComparison:
    """One workspace decided before and after a change, and what changed."""

    before: ChainOutcome
    after: ChainOutcome
    change: Change


def compare_facts(
    before: StoredFacts,
    after: StoredFacts,
    now: datetime,
    current: Configuration,
    proposed: Configuration,
) -> FactsComparison:
    """Decide a workspace's facts before a change (under ``current``) and after it (under
    ``proposed``); the danger classes are judged with each side's own credential names and
    proxy (a secret removed or a proxy gone can newly fail a provision)."""
    return _compare_facts(
        _memo_key(before, now, current, proposed),
        _memo_key(after, now, current, proposed),
        current,
        proposed,
    )


def _memo_key(
    facts: StoredFacts, now: datetime, current: Configuration, proposed: Configuration
) -> StoredFacts:
    # A decision depends on now only through whether the override has expired, and on the
    # credential names only through the registry credentials among them: memo on those.
    names = facts.workspace_secret_names | facts.org_secret_names
    relevant = relevant_auth_env(names, current.registry) | relevant_auth_env(
        names, proposed.registry
    )
    return replace(
        facts,
        override_expires_at=override_expired_at(facts.override_expires_at, now),
        workspace_secret_names=relevant,
        org_secret_names=frozenset(),
    )


@lru_cache(maxsize=16384)
def _compare_facts(
    before: StoredFacts, after: StoredFacts, current: Configuration, proposed: Configuration
) -> FactsComparison:
    # The memo keys carry an expiry only when it has passed; no now then keeps it passed.
    before_outcome = resolve_billing_mode(
        before.resolution_input("any-workspace", None), current.registry, current.policy
    ).outcome
    after_outcome = resolve_billing_mode(
        after.resolution_input("any-workspace", None), proposed.registry, proposed.policy
    ).outcome
    change = change_between(
        before_outcome,
        after_outcome,
        before_auth_env=before.workspace_secret_names,
        after_auth_env=after.workspace_secret_names,
        before_proxy=before.proxy_configured,
        after_proxy=after.proxy_configured,
        current=current,
        proposed=proposed,
    )
    return FactsComparison(before_outcome, after_outcome, change)
