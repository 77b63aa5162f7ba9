"""Every change shows its blast radius: preview, plan, guard, approve, apply.

A preview decides every workspace of the change's scope before and after the change with the
what-if's engine (:mod:`llmbilling.core.changes` over :mod:`llmbilling.core.whatif`) and the
read path's inputs. A plan is a stored preview bound to the versions of every input family it
read; applying it commits exactly that change through the ordinary write functions
(``service/admin.py``, ``service/secrets.py``), whose transaction first re-reads those
versions under the row locks and refuses (:class:`PlanStaleError`) when any moved. The same
preview runs inside the direct writes when the deployment guards dangerous writes.

Scopes: an override and a workspace secret change one workspace; an org default and an org
secret the org's workspaces; a policy/registry swap and a deployment setting the fleet (or one
org, when asked). Deployment-level changes are not written through llmbilling: their plan's
apply is a verification, after the deploy, that the running deployment is the proposed one
and nothing else the plan read has moved.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import EllipsisType
from typing import Any
from uuid import UUID

from llmbilling.core.changes import (
    AnyChange,
    ConfigurationChange,
    DeploymentChange,
    OrgDefaultChange,
    OverrideChange,
    SecretChange,
    StoredFacts,
    compare_facts,
    facts_after,
    proposed_configuration,
)
from llmbilling.core.decision import ChainOutcome, OverrideReadFailure
from llmbilling.core.policy import CompiledPolicy
from llmbilling.core.provisioning import effective_model
from llmbilling.core.registry import CompiledRegistry
from llmbilling.core.whatif import (
    Change,
    Configuration,
    DangerClass,
    Transition,
    WhatIfTally,
    by_count,
)
from llmbilling.errors import (
    DangerNotAcknowledgedError,
    InvalidInputError,
    LlmBillingError,
    OrgNotFoundError,
    PlanAlreadyAppliedError,
    PlanExpiredError,
    PlanNeedsApprovalError,
    PlanNeedsSecretValueError,
    PlanNotDeployedError,
    PlanNotFoundError,
    PlanSelfApprovalError,
    PlanStaleError,
    WorkspaceNotFoundError,
)
from llmbilling.service import admin, audit
from llmbilling.service import secrets as secret_writes
from llmbilling.service.audit import AuditContext
from llmbilling.service.context import (
    ServiceContext,
    check_env_name,
    parse_id,
    reading,
    writing,
)
from llmbilling.service.resolve import decision_time, stored_model
from llmbilling.service.whatif import MEMO_LIMIT, decide_grouped
from llmbilling.store import fleet
from llmbilling.store import plans as stored_plans
from llmbilling.store.engine import Connection
from llmbilling.store.orgs import org_exists
from llmbilling.store.plans import StoredPlan
from llmbilling.store.secrets import owner_org_id
from llmbilling.store.workspace_read import (
    WorkspaceState,
    as_uuid,
    read_workspace_state,
    split_secret_names,
    stored_timestamp,
    unpack_model_secrets,
)

DEFAULT_IMPACT_LIMIT = 100
MAX_IMPACT_LIMIT = 1000
DANGER_VALUES: tuple[str, ...] = tuple(danger.value for danger in DangerClass)
CHANGE_KINDS = ("workspace_override", "org_default", "secret", "deployment", "configuration")
# The input families a plan is bound to (store/plans.py scope_versions, then the deployment's).
STORED_FAMILIES = ("orgs", "workspaces", "secrets")
DEPLOYMENT_FAMILIES = ("policy", "registry", "deployment")
# Names whose values set the model: a change of them is a change of configuration the
# preview would have to decrypt and compare by value, so plans refuse them.
MODEL_SECRET_NAMES = frozenset({"MOLECULE_MODEL", "MODEL"})


# --- the scope and the preview -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChangeScope:
    """Whose decisions a change can move: one workspace (both ids), one org's workspaces
    (``org_id`` alone) or the fleet (neither)."""

    org_id: UUID | None
    workspace_id: UUID | None

    @property
    def kind(self) -> str:
        if self.workspace_id is not None:
            return "workspace"
        return "org" if self.org_id is not None else "fleet"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "org_id": None if self.org_id is None else str(self.org_id),
            "workspace_id": None if self.workspace_id is None else str(self.workspace_id),
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """A decision as a preview shows it: mode, source and provisioning verdict."""

    mode: str
    source: str
    provisioning: str

    @classmethod
    def of(cls, outcome: ChainOutcome) -> Verdict:
        return cls(outcome.mode.value, outcome.source.value, outcome.provisioning.status.value)

    def to_dict(self) -> dict[str, str]:
        return {"mode": self.mode, "source": self.source, "provisioning": self.provisioning}


@dataclass(frozen=True, slots=True)
class WorkspaceImpact:
    """One workspace whose decision or provisioning verdict the change moves."""

    workspace_id: UUID
    org_id: UUID
    before: Verdict
    after: Verdict
    dangers: tuple[DangerClass, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "workspace_id": str(self.workspace_id),
            "org_id": str(self.org_id),
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "dangers": [danger.value for danger in self.dangers],
        }


@dataclass(frozen=True, slots=True, eq=False)
class ChangePreview:
    """What a change would do to its scope. Counts cover every workspace of the scope;
    ``impacts`` lists the moved workspaces in id order, at most the limit asked for
    (``impacts_complete`` says whether that is all of them). ``observed`` is the digest per
    input family of what the preview read when it was made for a plan (the plan is bound to
    it), else None: a bare preview binds nothing, so it does not read the versions."""

    change: AnyChange
    scope: ChangeScope
    total: int
    changed: int
    mode_transitions: dict[Transition, int]
    source_transitions: dict[Transition, int]
    provisioning_transitions: dict[Transition, int]
    dangers: dict[DangerClass, int]
    danger_samples: dict[DangerClass, tuple[str, ...]]
    impacts: tuple[WorkspaceImpact, ...]
    impacts_complete: bool
    observed: dict[str, str] | None
    current_versions: tuple[str, str | None]
    proposed_versions: tuple[str, str | None]

    @property
    def danger_counts(self) -> dict[str, int]:
        """The non-empty danger classes with their counts."""
        return {danger.value: count for danger, count in self.dangers.items() if count}

    @property
    def has_danger(self) -> bool:
        return bool(self.danger_counts)

    def to_document(self) -> dict[str, Any]:
        """The preview's wire shape (plain JSON types); transitions largest first."""
        return {
            "change": change_document(self.change),
            "scope": self.scope.to_dict(),
            "total": self.total,
            "changed": self.changed,
            "dangerous": self.has_danger,
            "dangers": {danger.value: self.dangers.get(danger, 0) for danger in DangerClass},
            "danger_samples": {
                danger.value: list(self.danger_samples.get(danger, ())) for danger in DangerClass
            },
            "mode_transitions": _transitions(self.mode_transitions),
            "source_transitions": _transitions(self.source_transitions),
            "provisioning_transitions": _transitions(self.provisioning_transitions),
            "impacts": [impact.to_dict() for impact in self.impacts],
            "impacts_complete": self.impacts_complete,
            "current": _versions_document(self.current_versions),
            "proposed": _versions_document(self.proposed_versions),
        }


def _transitions(transitions: dict[Transition, int]) -> list[dict[str, Any]]:
    return [{"from": old, "to": new, "count": count} for (old, new), count in by_count(transitions)]


def _versions_document(versions: tuple[str, str | None]) -> dict[str, str | None]:
    return {"policy": versions[0], "registry": versions[1]}


def preview_change(
    context: ServiceContext,
    change: AnyChange,
    *,
    org_id: str | UUID | None = None,
    impact_limit: int = DEFAULT_IMPACT_LIMIT,
    samples_per_class: int = 20,
    authorize: Callable[[ChangeScope], None] | None = None,
) -> ChangePreview:
    """Decide every workspace of ``change``'s scope before and after it, as the read path
    decides them; nothing is written. ``org_id`` narrows a fleet-wide change (deployment,
    policy, registry) to one org; a write change's scope is its own. Raises
    :class:`InvalidInputError`, :class:`WorkspaceNotFoundError`/:class:`OrgNotFoundError` for
    a target that does not exist, :class:`StoreUnavailableError` when the store fails.
    ``authorize`` is called with the scope before anything is decided, and may raise (the
    caller's access rule)."""
    limit = _impact_limit(impact_limit)
    org_filter = None if org_id is None else parse_id("org_id", org_id)
    with reading(context) as connection:
        scope = _scope_of(connection, change, org_filter)
        if authorize is not None:
            authorize(scope)
        return _preview_in(context, connection, change, scope, limit, samples_per_class)


def _impact_limit(limit: int) -> int:
    if not 0 <= limit <= MAX_IMPACT_LIMIT:
        raise InvalidInputError("impact_limit", f"must be between 0 and {MAX_IMPACT_LIMIT}")
    return limit


def _scope_of(connection: Connection, change: AnyChange, org_filter: UUID | None) -> ChangeScope:
    if isinstance(change, OverrideChange):
        workspace = parse_id("workspace_id", change.workspace_id)
        state = read_workspace_state(connection, workspace)
        if state is None:
            raise WorkspaceNotFoundError(workspace)
        return ChangeScope(state.org_id, workspace)
    if isinstance(change, OrgDefaultChange):
        org = parse_id("org_id", change.org_id)
        if not org_exists(connection, org):
            raise OrgNotFoundError(org)
        return ChangeScope(org, None)
    if isinstance(change, SecretChange):
        owner = parse_id(f"{change.scope}_id", change.owner_id)
        owner_org = owner_org_id(connection, change.scope, owner)
        if owner_org is None:
            if change.scope == "org":
                raise OrgNotFoundError(owner)
            raise WorkspaceNotFoundError(owner)
        return ChangeScope(owner_org, owner if change.scope == "workspace" else None)
    if org_filter is not None and not org_exists(connection, org_filter):
        raise OrgNotFoundError(org_filter)
    return ChangeScope(org_filter, None)


def _row_state(row: Sequence[Any]) -> WorkspaceState:
    """A raw fleet row as the read path's state (for rows whose model is sealed)."""
    return WorkspaceState(
        workspace_id=as_uuid(row[0]),
        org_id=as_uuid(row[1]),
        override=row[2],
        runtime=row[3],
        model=row[4],
        org_default=row[5],
        workspace_version=row[6],
        org_version=row[7],
        workspace_secret_names=split_secret_names(row[8]),
        org_secret_names=split_secret_names(row[9]),
        model_secrets=unpack_model_secrets(row[10], row[11]),
        override_expires_at=stored_timestamp(row[12]),
    )


def _format_id(raw: Hashable) -> str:
    return str(as_uuid(raw))


def _unsealed_facts(context: ServiceContext, inputs: fleet.StoredInputs) -> StoredFacts:
    """Grouped stored inputs (a model not sealed: the model column is the model) as the
    core's facts."""
    deployment = context.deployment
    return StoredFacts(
        override=inputs.override,
        override_expires_at=inputs.expired_at,
        org_default=inputs.org_default,
        runtime=inputs.runtime,
        model=effective_model(None, inputs.model, {}),
        workspace_secret_names=split_secret_names(inputs.workspace_secret_names),
        org_secret_names=split_secret_names(inputs.org_secret_names),
        proxy_configured=deployment.proxy_configured,
        deployment_org_default=deployment.org_default,
    )


def stored_facts(context: ServiceContext, state: WorkspaceState) -> StoredFacts:
    """A read state as the core's facts, with the read path's effective model (an
    undecryptable model secret makes the state unreadable, as the read path has it)."""
    deployment = context.deployment
    try:
        model = stored_model(
            context,
            workspace_id=state.workspace_id,
            org_id=state.org_id,
            model=state.model,
            model_secrets=state.model_secrets,
        )
    except LlmBillingError as error:
        return StoredFacts(
            override=OverrideReadFailure(f"{error.code}: {error.message}"),
            override_expires_at=None,
            org_default=None,
            runtime=None,
            model=None,
            workspace_secret_names=frozenset(),
            org_secret_names=frozenset(),
            proxy_configured=deployment.proxy_configured,
            deployment_org_default=deployment.org_default,
        )
    return StoredFacts(
        override=state.override,
        override_expires_at=state.override_expires_at,
        org_default=state.org_default,
        runtime=state.runtime,
        model=model,
        workspace_secret_names=state.workspace_secret_names,
        org_secret_names=state.org_secret_names,
        proxy_configured=deployment.proxy_configured,
        deployment_org_default=deployment.org_default,
    )


def _preview_in(
    context: ServiceContext,
    connection: Connection,
    change: AnyChange,
    scope: ChangeScope,
    impact_limit: int,
    samples_per_class: int,
    *,
    bind: bool = False,
) -> ChangePreview:
    """The preview of ``change`` over ``scope``, read on ``connection``: an org's or the
    fleet's workspaces through the fleet what-if's grouped engine
    (``service.whatif.decide_grouped``), one workspace through the read path. With ``bind``
    (a plan is made of it), the observed digests are read in the same snapshot as the
    decisions (PostgreSQL)."""
    current = Configuration(context.policy, context.registry)
    proposed = proposed_configuration(change, current)
    tally = WhatIfTally(current, proposed, samples_per_class, format_id=_format_id)
    provisioning: Counter[Transition] = Counter()
    impacts: list[WorkspaceImpact] = []
    moved = 0
    # One "now" for the whole preview, as one read takes it.
    now = decision_time()

    # Rows whose model is sealed come one by one; most share their facts with others.
    decided_facts: dict[StoredFacts, _Decided] = {}

    def decide(facts: StoredFacts) -> _Decided:
        decided = decided_facts.get(facts)
        if decided is None:
            if len(decided_facts) >= MEMO_LIMIT:
                decided_facts.clear()
            compared = compare_facts(facts, facts_after(change, facts), now, current, proposed)
            decided = (Verdict.of(compared.before), Verdict.of(compared.after), compared.change)
            decided_facts[facts] = decided
        return decided

    def count(org: Hashable, decided: _Decided, workspaces: int) -> None:
        nonlocal moved
        old, new, compared = decided
        tally.add_many(org, compared, workspaces)
        provisioning[old.provisioning, new.provisioning] += workspaces
        if old != new:
            moved += workspaces

    def sample_classes(decided: _Decided) -> list[tuple[Hashable, int]]:
        old, new, compared = decided
        classes: list[tuple[Hashable, int]] = [
            (danger, samples_per_class) for danger in compared.dangers
        ]
        if compared.mode_changed:
            classes.append((compared.mode_transition, samples_per_class))
        if old != new:
            classes.append((_MOVED, impact_limit))
        return classes

    def offer(workspace: UUID, org: UUID, decided: _Decided) -> None:
        old, new, compared = decided
        tally.offer_sample(workspace, compared)
        if old != new and len(impacts) < impact_limit:
            impacts.append(WorkspaceImpact(workspace, org, old, new, compared.dangers))

    if scope.workspace_id is not None:
        state = read_workspace_state(connection, scope.workspace_id)
        if state is not None:
            decided = decide(stored_facts(context, state))
            count(state.org_id, decided, 1)
            offer(state.workspace_id, state.org_id, decided)
        observed = _observed(context, connection, scope) if bind else None
    else:
        with fleet.grouped_reads(connection, scope.org_id, now) as grouped:
            candidates = decide_grouped(
                grouped,
                lambda inputs: decide(_unsealed_facts(context, inputs)),
                lambda row: decide(stored_facts(context, _row_state(row))),
                count=count,
                sample_classes=sample_classes,
                largest_sample_limit=max(samples_per_class, impact_limit),
            )
            observed = _observed(context, connection, scope) if bind else None
        # In id order: the tally keeps each class's lowest ids, the impacts are the lowest
        # moved ids (the candidates hold them, see decide_grouped).
        for workspace_id, org_id, decided in candidates:
            offer(workspace_id, org_id, decided)
    report = tally.report()
    return ChangePreview(
        change=change,
        scope=scope,
        total=report.total,
        changed=report.changed,
        mode_transitions=report.mode_transitions,
        source_transitions=report.source_transitions,
        provisioning_transitions=dict(provisioning),
        dangers=report.dangers,
        danger_samples=report.danger_samples,
        impacts=tuple(impacts),
        impacts_complete=moved <= impact_limit,
        observed=observed,
        current_versions=report.current_versions,
        proposed_versions=report.proposed_versions,
    )


# A decision as the preview shows it: before, after, and the what-if's change between them.
_Decided = tuple[Verdict, Verdict, Change]
# The sample class of the moved workspaces (their lowest ids are the listed impacts).
_MOVED = "moved"


def _observed(
    context: ServiceContext, connection: Connection, scope: ChangeScope
) -> dict[str, str]:
    versions = stored_plans.scope_versions(connection, scope.org_id, scope.workspace_id)
    return {**versions, **_deployment_versions(context)}


def _deployment_versions(context: ServiceContext) -> dict[str, str]:
    registry = context.registry
    return {
        "policy": context.policy.version,
        "registry": "unavailable" if registry is None else registry.version,
        "deployment": _deployment_digest(
            context.deployment.proxy_configured, context.deployment.org_default
        ),
    }


def _deployment_digest(proxy_configured: bool, org_default: str | None) -> str:
    text = f"proxy_configured={proxy_configured};org_default={org_default!r}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# --- change documents ----------------------------------------------------------------------------


def change_document(change: AnyChange) -> dict[str, Any]:
    """A change as plain JSON values (what a plan stores and the API shows); never a secret
    value. A policy/registry swap is named by the proposed versions."""
    if isinstance(change, OverrideChange):
        return {
            "kind": change.kind.value,
            "workspace_id": change.workspace_id,
            "mode": change.mode,
            "expires_at": None if change.expires_at is None else change.expires_at.isoformat(),
        }
    if isinstance(change, OrgDefaultChange):
        return {"kind": change.kind.value, "org_id": change.org_id, "mode": change.mode}
    if isinstance(change, SecretChange):
        return {
            "kind": change.kind.value,
            "scope": change.scope,
            "owner_id": change.owner_id,
            "name": change.name,
            "present": change.present,
        }
    if isinstance(change, DeploymentChange):
        document: dict[str, Any] = {
            "kind": change.kind.value,
            "proxy_configured": change.proxy_configured,
        }
        if change.changes_org_default:
            document["org_default"] = change.org_default
        return document
    registry = change.proposed.registry
    return {
        "kind": change.kind.value,
        "policy_version": change.proposed.policy.version,
        "registry_version": None if registry is None else registry.version,
    }


def override_change(
    workspace_id: str | UUID, mode: str | None, expires_at: str | datetime | None = None
) -> OverrideChange:
    """An override change as a write would make it (mode exact, expiry in the future, UTC);
    :class:`InvalidInputError` naming the field otherwise."""
    parsed = parse_id("workspace_id", workspace_id)
    new_mode = None if mode is None else admin.parse_override(mode).value
    expiry = admin.parse_expiry(expires_at, decision_time())
    if new_mode is None and expiry is not None:
        raise InvalidInputError("expires_at", "only an override that sets a mode can expire")
    return OverrideChange(str(parsed), new_mode, expiry)


def org_default_change(org_id: str | UUID, mode: str | None) -> OrgDefaultChange:
    """An org default change as the write stores it (raw text that normalizes to a mode)."""
    return OrgDefaultChange(str(parse_id("org_id", org_id)), admin.parse_org_default(mode))


def secret_change(scope: str, owner_id: str | UUID, name: str, *, present: bool) -> SecretChange:
    """A secret coming (``present``) or going at ``scope`` (``org`` or ``workspace``). The
    model names (``MOLECULE_MODEL``, ``MODEL``) are refused: their value, not their presence,
    decides."""
    if scope not in ("org", "workspace"):
        raise InvalidInputError("scope", f"{scope!r} is not a secret scope", ("org", "workspace"))
    check_env_name("name", name)
    if name in MODEL_SECRET_NAMES:
        raise InvalidInputError(
            "name", f"{name} sets the model: its value decides, so it cannot be planned"
        )
    owner = str(parse_id(f"{scope}_id", owner_id))
    if scope == "org":
        return SecretChange("org", owner, name, present)
    return SecretChange("workspace", owner, name, present)


def deployment_change(
    *, proxy_configured: bool | None = None, org_default: str | EllipsisType | None = ...
) -> DeploymentChange:
    """A deployment setting change: the proxy configured or not (None: as today) and/or the
    env org default (``MOLECULE_LLM_BILLING_MODE``; left out: as today, None: unset). Naming
    neither previews no change."""
    if isinstance(org_default, EllipsisType):
        return DeploymentChange(proxy_configured=proxy_configured)
    raw = admin.parse_org_default(org_default, "org_default")
    return DeploymentChange(
        proxy_configured=proxy_configured, changes_org_default=True, org_default=raw
    )


def configuration_change(
    context: ServiceContext, policy: CompiledPolicy | None, registry: CompiledRegistry | None
) -> ConfigurationChange:
    """A policy and/or registry swap; what it leaves out stays as it is today (naming
    neither previews no change)."""
    return ConfigurationChange(
        Configuration(
            policy if policy is not None else context.policy,
            registry if registry is not None else context.registry,
        )
    )


def parse_change(document: Mapping[str, Any]) -> AnyChange:
    """A stored change document back as a change (every kind but ``configuration``, whose
    proposal is not stored: its plan is verified by versions)."""
    kind = document.get("kind")
    if kind == "workspace_override":
        return override_change(
            document["workspace_id"], document.get("mode"), document.get("expires_at")
        )
    if kind == "org_default":
        return org_default_change(document["org_id"], document.get("mode"))
    if kind == "secret":
        return secret_change(
            document["scope"], document["owner_id"], document["name"], present=document["present"]
        )
    if kind == "deployment":
        if "org_default" in document:
            return deployment_change(
                proxy_configured=document.get("proxy_configured"),
                org_default=document["org_default"],
            )
        return deployment_change(proxy_configured=document.get("proxy_configured"))
    raise InvalidInputError("kind", f"{kind!r} cannot be read back as a change", CHANGE_KINDS)


# --- plans -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """A stored plan as a caller may see it. ``status`` is the stored state, or ``expired``
    for an unapplied plan past ``expires_at``; ``needs_approval`` says whether applying it
    waits for a second token's approval under this deployment's rules."""

    id: UUID
    change: dict[str, Any]
    scope: ChangeScope
    observed: dict[str, str]
    preview: dict[str, Any]
    dangerous: bool
    status: str
    needs_approval: bool
    proposed_by: str
    created_at: datetime
    expires_at: datetime
    approved_by: str | None
    approved_at: datetime | None
    applied_by: str | None
    applied_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "status": self.status,
            "change": self.change,
            "scope": self.scope.to_dict(),
            "dangerous": self.dangerous,
            "needs_approval": self.needs_approval,
            "preview": self.preview,
            "observed": self.observed,
            "proposed_by": self.proposed_by,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "approved_by": self.approved_by,
            "approved_at": None if self.approved_at is None else self.approved_at.isoformat(),
            "applied_by": self.applied_by,
            "applied_at": None if self.applied_at is None else self.applied_at.isoformat(),
        }


def _plan_of(context: ServiceContext, stored: StoredPlan, now: datetime) -> Plan:
    expired = stored.state != "applied" and now >= stored.expires_at
    return Plan(
        id=stored.id,
        change=stored.change,
        scope=ChangeScope(stored.org_id, stored.workspace_id),
        observed=stored.observed,
        preview=stored.summary,
        dangerous=stored.dangerous,
        status="expired" if expired else stored.state,
        needs_approval=_needs_approval(context, stored),
        proposed_by=stored.proposed_by,
        created_at=stored.created_at,
        expires_at=stored.expires_at,
        approved_by=stored.approved_by,
        approved_at=stored.approved_at,
        applied_by=stored.applied_by,
        applied_at=stored.applied_at,
    )


def _needs_approval(context: ServiceContext, stored: StoredPlan) -> bool:
    return (
        context.change_rules.dangerous_plans_need_approval
        and stored.dangerous
        and stored.state == "proposed"
    )


def propose_plan(
    context: ServiceContext,
    change: AnyChange,
    *,
    org_id: str | UUID | None = None,
    impact_limit: int = DEFAULT_IMPACT_LIMIT,
    audit_context: AuditContext | None = None,
    authorize: Callable[[ChangeScope], None] | None = None,
) -> Plan:
    """Preview ``change`` and store the preview as a plan bound to the versions it read
    (one transaction, audited ``plan.proposed``). It expires after the deployment's plan
    lifetime. Raises, and calls ``authorize``, as :func:`preview_change` does."""
    limit = _impact_limit(impact_limit)
    org_filter = None if org_id is None else parse_id("org_id", org_id)
    who = audit_context or AuditContext()
    # The preview reads outside the write transaction (on SQLite that would lock out every
    # writer while a big org is decided); what it read is what the plan is bound to, and the
    # apply checks exactly that.
    with reading(context) as connection:
        scope = _scope_of(connection, change, org_filter)
        if authorize is not None:
            authorize(scope)
        preview = _preview_in(context, connection, change, scope, limit, 20, bind=True)
    assert preview.observed is not None
    with writing(context) as connection:
        now = audit.now()
        stored = StoredPlan(
            id=uuid.uuid4(),
            change=change_document(change),
            org_id=scope.org_id,
            workspace_id=scope.workspace_id,
            observed=preview.observed,
            summary={
                **preview.to_document(),
                "deployed_versions": _deployed_versions(context, change),
            },
            dangerous=preview.has_danger,
            state="proposed",
            proposed_by=who.actor,
            created_at=now,
            expires_at=now + timedelta(seconds=context.change_rules.plan_ttl_seconds),
            approved_by=None,
            approved_at=None,
            applied_by=None,
            applied_at=None,
        )
        stored_plans.insert_plan(connection, stored)
        audit.record(
            connection,
            who,
            "plan.proposed",
            org_id=scope.org_id,
            workspace_id=scope.workspace_id,
            after={
                "plan_id": str(stored.id),
                "change": stored.change,
                "dangers": preview.danger_counts,
                "expires_at": stored.expires_at.isoformat(),
            },
        )
    return _plan_of(context, stored, now)


def get_plan(context: ServiceContext, plan_id: str | UUID) -> Plan:
    """The plan with this id; :class:`PlanNotFoundError` when there is none."""
    parsed = parse_id("plan_id", plan_id)
    with reading(context) as connection:
        stored = stored_plans.read_plan(connection, parsed)
    if stored is None:
        raise PlanNotFoundError(parsed)
    return _plan_of(context, stored, audit.now())


def list_plans(
    context: ServiceContext, *, org_ids: Iterable[UUID] | None = None, limit: int = 50
) -> list[Plan]:
    """Plans newest first (of the given orgs only, when given)."""
    if limit < 1:
        raise InvalidInputError("limit", "must be at least 1")
    with reading(context) as connection:
        rows = stored_plans.list_plans(connection, org_ids=org_ids, limit=limit)
    now = audit.now()
    return [_plan_of(context, row, now) for row in rows]


def _locked_plan(connection: Connection, plan_id: UUID, now: datetime) -> StoredPlan:
    stored = stored_plans.read_plan(connection, plan_id, lock=True)
    if stored is None:
        raise PlanNotFoundError(plan_id)
    if stored.state == "applied":
        assert stored.applied_at is not None
        raise PlanAlreadyAppliedError(stored.applied_at.isoformat())
    if now >= stored.expires_at:
        raise PlanExpiredError(stored.expires_at.isoformat())
    return stored


def approve_plan(
    context: ServiceContext,
    plan_id: str | UUID,
    *,
    audit_context: AuditContext | None = None,
    authorize: Callable[[Plan], None] | None = None,
) -> Plan:
    """A second token approves a plan (audited ``plan.approved``). Refused with
    :class:`PlanSelfApprovalError` when the approver is the proposer, and with
    :class:`PlanExpiredError`/:class:`PlanAlreadyAppliedError`; approving an approved plan
    again answers it unchanged. ``authorize`` is called with the plan under its row lock and
    may raise (the caller's access rule)."""
    parsed = parse_id("plan_id", plan_id)
    who = audit_context or AuditContext()
    now = audit.now()
    with writing(context) as connection:
        stored = _locked_plan(connection, parsed, now)
        if authorize is not None:
            authorize(_plan_of(context, stored, now))
        if stored.proposed_by == who.actor:
            raise PlanSelfApprovalError(stored.proposed_by)
        if stored.state == "approved":
            return _plan_of(context, stored, now)
        stored_plans.mark_approved(connection, parsed, who.actor, now)
        audit.record(
            connection,
            who,
            "plan.approved",
            org_id=stored.org_id,
            workspace_id=stored.workspace_id,
            after={"plan_id": str(parsed), "proposed_by": stored.proposed_by},
        )
        approved = stored_plans.read_plan(connection, parsed)
    assert approved is not None
    return _plan_of(context, approved, now)


def apply_plan(
    context: ServiceContext,
    plan_id: str | UUID,
    *,
    secret_value: str | None = None,
    reason: str | None = None,
    acknowledged: Iterable[DangerClass] = frozenset(),
    audit_context: AuditContext | None = None,
    authorize: Callable[[Plan], None] | None = None,
) -> Plan:
    """Commit exactly the plan's change, through the ordinary write (its audit entry, its
    row locks), and mark the plan applied (audited ``plan.applied``) in the same transaction.
    ``reason`` (see :func:`admin.parse_reason`) is kept in the write's audit entry and the
    ``plan.applied`` entry, as a direct write keeps it.

    Inside that transaction, under the locks, every input family the preview read is read
    again: :class:`PlanStaleError` names those that moved. Also refused:
    :class:`PlanExpiredError`, :class:`PlanAlreadyAppliedError`, and
    :class:`PlanNeedsApprovalError` for a dangerous plan not yet approved when the deployment
    asks for approval, and :class:`DangerNotAcknowledgedError` for a dangerous plan when the
    deployment guards dangerous writes and ``acknowledged`` does not name every class of the
    plan's preview (as a direct write is refused). A secret plan that sets a secret takes
    its value here (``secret_value``; never stored in the plan). A deployment-level plan's
    apply is a verification after the deploy (:class:`PlanNotDeployedError` while the
    running deployment is not the proposed one); nothing is written but the plan's state and
    its audit entry.
    ``authorize`` is called with the plan under its row lock and may raise.
    """
    parsed = parse_id("plan_id", plan_id)
    why = admin.parse_reason(reason)
    who = audit_context or AuditContext()
    consent = Consent(why, frozenset(acknowledged))
    with reading(context) as connection:
        found = stored_plans.read_plan(connection, parsed)
    if found is None:
        raise PlanNotFoundError(parsed)
    kind = found.change.get("kind")
    if kind in ("deployment", "configuration"):
        _verify_deployment_plan(context, parsed, who, authorize, consent)
    else:
        change = parse_change(found.change)
        if isinstance(change, SecretChange) and change.present and not secret_value:
            raise PlanNeedsSecretValueError(change.name)
        hook = _apply_hook(context, parsed, who, authorize, consent)
        _write(context, change, who, hook, secret_value, why)
    return get_plan(context, parsed)


@dataclass(frozen=True, slots=True)
class Consent:
    """What the applier said with the apply: why (kept in the audit log) and which danger
    classes it knowingly creates."""

    reason: str | None
    acknowledged: frozenset[DangerClass]


def _check_consent(context: ServiceContext, stored: StoredPlan, consent: Consent) -> None:
    """The guard of direct writes, on a plan: approval first, then acknowledgement."""
    if _needs_approval(context, stored):
        raise PlanNeedsApprovalError(_plan_dangers(stored))
    dangers = _plan_dangers(stored)
    if not dangers or not context.change_rules.guard_dangerous_writes:
        return
    missing = set(dangers) - {danger.value for danger in consent.acknowledged}
    if missing:
        raise DangerNotAcknowledgedError(dangers, missing)


def _write(
    context: ServiceContext,
    change: AnyChange,
    who: AuditContext,
    under_lock: Callable[[Connection], None],
    secret_value: str | None,
    reason: str | None,
) -> None:
    """The change committed through the ordinary write function of its kind."""
    if isinstance(change, OverrideChange):
        admin.set_override(
            context,
            change.workspace_id,
            change.mode,
            expires_at=change.expires_at,
            audit_context=who,
            reason=reason,
            under_lock=under_lock,
        )
    elif isinstance(change, OrgDefaultChange):
        admin.set_org_default(
            context,
            change.org_id,
            change.mode,
            audit_context=who,
            reason=reason,
            under_lock=under_lock,
        )
    elif isinstance(change, SecretChange) and change.present:
        assert secret_value is not None
        secret_writes.set_secret(
            context,
            change.scope,
            change.owner_id,
            change.name,
            secret_value,
            audit_context=who,
            reason=reason,
            under_lock=under_lock,
        )
    elif isinstance(change, SecretChange):
        secret_writes.delete_secret(
            context,
            change.scope,
            change.owner_id,
            change.name,
            audit_context=who,
            reason=reason,
            under_lock=under_lock,
        )
    else:  # pragma: no cover - apply_plan routes deployment-level plans elsewhere
        raise InvalidInputError("kind", "not a write change", CHANGE_KINDS)


def _apply_hook(
    context: ServiceContext,
    plan_id: UUID,
    who: AuditContext,
    authorize: Callable[[Plan], None] | None,
    consent: Consent,
) -> Callable[[Connection], None]:
    def check_and_mark(connection: Connection) -> None:
        now = audit.now()
        stored = _locked_plan(connection, plan_id, now)
        if authorize is not None:
            authorize(_plan_of(context, stored, now))
        _check_consent(context, stored, consent)
        stored_plans.lock_scope(connection, stored.org_id, stored.workspace_id)
        scope = ChangeScope(stored.org_id, stored.workspace_id)
        _refuse_moved(stored.observed, _observed(context, connection, scope))
        _mark_applied(connection, stored, who, now, "plan.applied", consent.reason)

    return check_and_mark


def _refuse_moved(expected: Mapping[str, str], current: Mapping[str, str]) -> None:
    moved = [family for family, digest in expected.items() if current.get(family) != digest]
    if moved:
        raise PlanStaleError(moved)


def _plan_dangers(stored: StoredPlan) -> dict[str, int]:
    dangers: dict[str, int] = stored.summary.get("dangers", {})
    return {danger: count for danger, count in dangers.items() if count}


def _mark_applied(
    connection: Connection,
    stored: StoredPlan,
    who: AuditContext,
    now: datetime,
    action: str,
    reason: str | None,
) -> None:
    stored_plans.mark_applied(connection, stored.id, who.actor, now)
    audit.record(
        connection,
        who,
        action,
        org_id=stored.org_id,
        workspace_id=stored.workspace_id,
        after=admin.with_reason(
            {
                "plan_id": str(stored.id),
                "change": stored.change,
                "proposed_by": stored.proposed_by,
                "approved_by": stored.approved_by,
                "dangers": _plan_dangers(stored),
            },
            reason,
        ),
    )


def _verify_deployment_plan(
    context: ServiceContext,
    plan_id: UUID,
    who: AuditContext,
    authorize: Callable[[Plan], None] | None,
    consent: Consent,
) -> None:
    with writing(context) as connection:
        now = audit.now()
        stored = _locked_plan(connection, plan_id, now)
        if authorize is not None:
            authorize(_plan_of(context, stored, now))
        _check_consent(context, stored, consent)
        running = _deployment_versions(context)
        proposed: dict[str, str] = stored.summary["deployed_versions"]
        waiting = [
            family
            for family, version in proposed.items()
            if running[family] != version and running[family] == stored.observed[family]
        ]
        if waiting:
            raise PlanNotDeployedError(waiting)
        scope = ChangeScope(stored.org_id, stored.workspace_id)
        stored_plans.lock_scope(connection, stored.org_id, None)
        expected = {**stored.observed, **proposed}
        _refuse_moved(expected, _observed(context, connection, scope))
        _mark_applied(connection, stored, who, now, "plan.verified", consent.reason)


def _deployed_versions(context: ServiceContext, change: AnyChange) -> dict[str, str]:
    """The deployment families' versions once ``change`` is deployed (empty for a write)."""
    if isinstance(change, ConfigurationChange):
        registry = change.proposed.registry
        return {
            "policy": change.proposed.policy.version,
            "registry": "unavailable" if registry is None else registry.version,
        }
    if isinstance(change, DeploymentChange):
        deployment = context.deployment
        proxy = deployment.proxy_configured
        return {
            "deployment": _deployment_digest(
                proxy if change.proxy_configured is None else change.proxy_configured,
                change.org_default if change.changes_org_default else deployment.org_default,
            )
        }
    return {}


# --- the guard of direct writes ------------------------------------------------------------------


def parse_acknowledged(text: str | Iterable[str] | None) -> frozenset[DangerClass]:
    """Danger classes a request acknowledges: names, comma-separated in one text or listed;
    :class:`InvalidInputError` naming the classes for an unknown one."""
    if text is None:
        return frozenset()
    names = text.split(",") if isinstance(text, str) else list(text)
    found: set[DangerClass] = set()
    for name in names:
        stripped = name.strip()
        if not stripped:
            continue
        try:
            found.add(DangerClass(stripped))
        except ValueError:
            raise InvalidInputError(
                "acknowledge_dangers", f"{stripped!r} is not a danger class", DANGER_VALUES
            ) from None
    return frozenset(found)


def write_guard(
    context: ServiceContext, change: AnyChange, acknowledged: Iterable[DangerClass] = ()
) -> Callable[[Connection], None] | None:
    """The check a direct write runs under its row lock when the deployment guards dangerous
    writes (None when it does not): the change is previewed in the write's transaction, and a
    change creating danger-class workspaces is refused — with
    :class:`DangerNotAcknowledgedError` unless ``acknowledged`` names every class, and with
    :class:`PlanNeedsApprovalError` always when dangerous plans need approval (such a write
    must go through a plan)."""
    rules = context.change_rules
    if not guards_dangerous_writes(context):
        return None
    known = frozenset(acknowledged)

    def guard(connection: Connection) -> None:
        scope = _scope_of(connection, change, None)
        dangers = _preview_in(context, connection, change, scope, 0, 0).danger_counts
        if not dangers:
            return
        if rules.dangerous_plans_need_approval:
            raise PlanNeedsApprovalError(dangers)
        missing = set(dangers) - {danger.value for danger in known}
        if missing:
            raise DangerNotAcknowledgedError(dangers, missing)

    return guard


def guard_override(
    context: ServiceContext,
    workspace_id: str | UUID,
    mode: str | None,
    expires_at: str | datetime | None,
    acknowledged: str | Iterable[str] | None,
) -> Callable[[Connection], None] | None:
    """:func:`write_guard` of an override write (None when the deployment guards nothing).
    ``acknowledged`` is checked either way: an unknown class is an :class:`InvalidInputError`."""
    known = parse_acknowledged(acknowledged)
    if not guards_dangerous_writes(context):
        return None
    change = override_change(workspace_id, mode, expires_at)
    return write_guard(context, change, known)


def guard_org_default(
    context: ServiceContext,
    org_id: str | UUID,
    mode: str | None,
    acknowledged: str | Iterable[str] | None,
) -> Callable[[Connection], None] | None:
    """:func:`write_guard` of an org default write (None when the deployment guards
    nothing); ``acknowledged`` is checked either way, as :func:`guard_override` has it."""
    known = parse_acknowledged(acknowledged)
    if not guards_dangerous_writes(context):
        return None
    change = org_default_change(org_id, mode)
    return write_guard(context, change, known)


def guards_dangerous_writes(context: ServiceContext) -> bool:
    """Whether a direct write that would create danger-class workspaces is refused (the guard
    setting, or two people for dangerous plans): such a change should go through a plan."""
    rules = context.change_rules
    return rules.guard_dangerous_writes or rules.dangerous_plans_need_approval


def deployment_state(context: ServiceContext) -> dict[str, Any]:
    """The running deployment's settings a deployment change moves (no secret: whether a
    proxy is configured, and the env org default text)."""
    return {
        "proxy_configured": context.deployment.proxy_configured,
        "org_default": context.deployment.org_default,
    }
