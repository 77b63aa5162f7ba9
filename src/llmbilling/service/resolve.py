"""The read path: a workspace's decision from its stored state (one SQL statement).

Stored state becomes the core's :class:`ResolutionInput` in two steps, shared by every reader
(the decision GET, listings, the fleet what-if, the registry diff, provisioning):
:func:`stored_model` (the effective model; decrypts only model-name secrets) and
:func:`stored_inputs` (the columns plus the deployment's share). A database failure never
reaches the caller as an exception: it becomes the ``constant_fallback`` decision with the
error beside it (spec §2 rung 1, §6).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from llmbilling.core.decision import BillingDecision, OverrideReadFailure, ResolutionInput
from llmbilling.core.provisioning import EffectiveModel, effective_model, effective_model_origin
from llmbilling.core.resolve import resolve_billing_mode
from llmbilling.core.secrets import SecretValue, merge_secret_scopes
from llmbilling.errors import LlmBillingError, StoreUnavailableError, WorkspaceNotFoundError
from llmbilling.service.context import ServiceContext, parse_id
from llmbilling.store.crypto import SecretLocation
from llmbilling.store.workspace_read import (
    SealedSecret,
    WorkspaceState,
    read_workspace_state,
    read_workspace_state_on_loop,
)


@dataclass(frozen=True, slots=True)
class DecisionVersion:
    """What one decision was computed from, for conditional writes (HTTP ``ETag``/``If-Match``).

    ``workspace_version`` and ``org_version`` are the ``row_version`` of the workspace row and
    of its org's row, read in the same statement as the decision; every write of either row
    bumps its version. ``record_digest`` is a hash of the decision record itself, so the
    version also moves when an input that lives outside those rows changes the decision
    (secret names, the deployment's proxy or default, the registry, the policy).
    """

    workspace_version: int
    org_version: int
    record_digest: str

    @classmethod
    def of(cls, state: WorkspaceState, decision: BillingDecision) -> DecisionVersion:
        return cls.of_record(state, decision.to_json())

    @classmethod
    def of_record(cls, state: WorkspaceState, record: bytes) -> DecisionVersion:
        """The version of a decision already serialized by :meth:`BillingDecision.to_json`."""
        return cls(
            state.workspace_version, state.org_version, hashlib.sha256(record).hexdigest()[:16]
        )


@dataclass(frozen=True, slots=True)
class StoredDecision:
    """A workspace's decision and the stored state it was made from.

    ``state`` is None when the state could not be read: the decision is then the
    ``constant_fallback`` one, and nothing about the workspace is known.
    """

    decision: BillingDecision
    state: WorkspaceState | None

    @property
    def org_id(self) -> UUID | None:
        return None if self.state is None else self.state.org_id

    @property
    def version(self) -> DecisionVersion | None:
        """Computed on demand (only conditional writes and ETags need it): it hashes the
        decision record."""
        return None if self.state is None else DecisionVersion.of(self.state, self.decision)


def resolve_workspace(context: ServiceContext, workspace_id: str | UUID) -> BillingDecision:
    """The decision record of a stored workspace.

    Raises :class:`InvalidInputError` (field ``workspace_id``) for a malformed id and
    :class:`WorkspaceNotFoundError` for an unknown one. Any failure to read the stored state
    yields the ``constant_fallback`` decision with an ``OVERRIDE_READ_FAILED`` error instead.
    """
    return read_decision(context, workspace_id).decision


def read_decision(context: ServiceContext, workspace_id: str | UUID) -> StoredDecision:
    """:func:`resolve_workspace` with the owning org and the version of what was read (the
    same single statement); raises and falls back exactly as it does."""
    parsed = parse_id("workspace_id", workspace_id)
    try:
        with context.store.connection() as connection:
            state = read_workspace_state(connection, parsed)
    except StoreUnavailableError as error:
        return _unreadable(context, parsed, error)
    return _found(context, parsed, state)


async def read_decision_on_loop(
    context: ServiceContext, workspace_id: UUID, *, from_store: bool = False
) -> StoredDecision:
    """:func:`read_decision` for a coroutine: the state is read through the loop's reader (no
    thread hand-off), or taken from ``context.decision_cache`` while that serves, unless
    ``from_store`` (then every commit, of any replica, is seen); it raises and falls back
    exactly as :func:`read_decision` does."""
    cache = context.decision_cache
    reader = context.loop_reader()
    cache.catch_up(reader)
    kept = None if from_store else cache.state(workspace_id)
    if kept is not None:
        return StoredDecision(decide_from_state(context, kept), kept)
    ticket = cache.ticket()
    try:
        with context.store.translated_errors():
            state = await read_workspace_state_on_loop(reader, workspace_id)
    except StoreUnavailableError as error:
        return _unreadable(context, workspace_id, error)
    if state is not None:
        cache.keep_state(ticket, state)
    return _found(context, workspace_id, state)


def _found(
    context: ServiceContext, workspace_id: UUID, state: WorkspaceState | None
) -> StoredDecision:
    if state is None:
        raise WorkspaceNotFoundError(workspace_id)
    return StoredDecision(decide_from_state(context, state), state)


def _unreadable(
    context: ServiceContext, workspace_id: UUID, error: StoreUnavailableError
) -> StoredDecision:
    return StoredDecision(unreadable_decision(context, workspace_id, error.message), None)


def decide_from_state(context: ServiceContext, state: WorkspaceState) -> BillingDecision:
    """The decision of one read state (the read path's, also used by listings and writes)."""
    return resolve_billing_mode(read_path_inputs(context, state), context.registry, context.policy)


def decision_time() -> datetime:
    """The "now" a decision is made at (UTC): the one clock the read path reads, at its edge;
    the core is given it (an override's expiry is judged against it)."""
    return datetime.now(UTC)


def read_path_inputs(context: ServiceContext, state: WorkspaceState) -> ResolutionInput:
    """The two steps over one read state; an undecryptable model secret makes the state
    unreadable (``constant_fallback``)."""
    try:
        model = stored_model(
            context,
            workspace_id=state.workspace_id,
            org_id=state.org_id,
            model=state.model,
            model_secrets=state.model_secrets,
        )
    except LlmBillingError as error:
        return unreadable_inputs(context, state.workspace_id, f"{error.code}: {error.message}")
    return stored_inputs(
        context,
        workspace_id=str(state.workspace_id),
        override=state.override,
        org_default=state.org_default,
        runtime=state.runtime,
        model=model,
        auth_env=state.secret_names,
        override_expires_at=state.override_expires_at,
        now=decision_time(),
    )


def stored_model(
    context: ServiceContext,
    *,
    workspace_id: UUID,
    org_id: UUID,
    model: str | None,
    model_secrets: tuple[SealedSecret, ...],
) -> str | None:
    """Step one: the model a provision without a request model would run (spec §4's effective
    model): the stored model, else the sealed ``MOLECULE_MODEL``/``MODEL`` secrets (workspace
    scope over org scope), decrypted. Raises :class:`LlmBillingError` when one cannot be."""
    if not model_secrets:
        return effective_model(None, model, {})
    return stored_model_origin(
        context,
        workspace_id=workspace_id,
        org_id=org_id,
        model=model,
        model_secrets=model_secrets,
    ).model


def stored_model_origin(
    context: ServiceContext,
    *,
    workspace_id: UUID,
    org_id: UUID,
    model: str | None,
    model_secrets: tuple[SealedSecret, ...],
) -> EffectiveModel:
    """:func:`stored_model` with where the model came from (the model column, or which
    secret of which scope); raises as it does."""
    scoped: dict[str, dict[str, str]] = {"org": {}, "workspace": {}}
    for sealed in model_secrets:
        owner = workspace_id if sealed.scope == "workspace" else org_id
        location = SecretLocation(sealed.scope, owner, sealed.name)
        scoped[sealed.scope][sealed.name] = context.key_ring.decrypt(sealed.value, location)
    merged: dict[str, SecretValue] = merge_secret_scopes(scoped["org"], scoped["workspace"])
    return effective_model_origin(None, model, merged)


def stored_inputs(
    context: ServiceContext,
    *,
    workspace_id: str | None,
    override: str | None,
    org_default: str | None,
    runtime: str | None,
    model: str | None,
    auth_env: frozenset[str],
    override_expires_at: datetime | None,
    now: datetime,
) -> ResolutionInput:
    """Step two: a decision's inputs from stored columns and the effective model; the
    deployment supplies the proxy, and the org default of orgs that store none (spec §5).
    ``now`` is the moment the override's expiry is judged at."""
    return ResolutionInput(
        workspace_id=workspace_id,
        override=override,
        org_default=org_default if org_default is not None else context.deployment.org_default,
        runtime=runtime,
        model=model,
        auth_env=auth_env,
        proxy_configured=context.deployment.proxy_configured,
        override_expires_at=override_expires_at,
        now=now,
    )


def unreadable_decision(
    context: ServiceContext, workspace_id: UUID, message: str
) -> BillingDecision:
    """``constant_fallback``: the override could not be read, so nothing later is trusted."""
    return resolve_billing_mode(
        unreadable_inputs(context, workspace_id, message), context.registry, context.policy
    )


def unreadable_inputs(context: ServiceContext, workspace_id: UUID, message: str) -> ResolutionInput:
    return ResolutionInput(
        workspace_id=str(workspace_id),
        override=OverrideReadFailure(message),
        org_default=context.deployment.org_default,
        runtime=None,
        model=None,
        auth_env=frozenset(),
        proxy_configured=context.deployment.proxy_configured,
    )
