"""Provisioning (spec §4) with flip detection: read, decide, build the env, record, audit.

Everything happens in one write transaction: the workspace row is locked first (PostgreSQL;
SQLite write transactions begin IMMEDIATE), so two provisions of one workspace cannot both
miss a flip. On any error nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from uuid import UUID

from llmbilling.core.modes import BillingMode
from llmbilling.core.provisioning import ProvisionEnv, build_provision_env, effective_model
from llmbilling.core.resolve import resolve_billing_mode
from llmbilling.core.secrets import merge_secret_scopes
from llmbilling.errors import MissingModelError, WorkspaceNotFoundError
from llmbilling.service import audit
from llmbilling.service.audit import AuditContext
from llmbilling.service.context import ServiceContext, parse_id
from llmbilling.service.resolve import decision_time, stored_inputs
from llmbilling.store import workspaces as stored_workspaces
from llmbilling.store.crypto import KeyRing, SecretLocation
from llmbilling.store.engine import Connection
from llmbilling.store.provisions import insert_provision, latest_provision_mode
from llmbilling.store.secrets import sealed_values
from llmbilling.store.workspace_read import WorkspaceState, read_workspace_state
from llmbilling.store.workspaces import DEFAULT_RUNTIME


@dataclass(frozen=True, slots=True)
class ProvisionResult:
    """The env (values inside ``provision.env`` only) and what was recorded.

    ``flipped_from`` is the mode of the workspace's previous provision when it differs.
    """

    provision: ProvisionEnv
    flipped_from: BillingMode | None
    provision_id: int

    def public_summary(self) -> dict[str, object]:
        """Names, decision and flip; never a value."""
        return {
            **self.provision.public_summary(),
            "flipped_from": None if self.flipped_from is None else self.flipped_from.value,
            "provision_id": self.provision_id,
        }


def provision_workspace(
    context: ServiceContext,
    workspace_id: str | UUID,
    *,
    request_model: str | None = None,
    audit_context: AuditContext | None = None,
    check_env: Callable[[Mapping[str, str]], None] | None = None,
) -> ProvisionResult:
    """Build the env a workspace's container starts with, and record the decision.

    ``check_env`` sees the built env before anything is written; an error it raises
    propagates and nothing is recorded (the CLI refuses a value its output format cannot
    carry this way).

    Raises the typed provisioning errors (``MISSING_MODEL``, ``MISSING_PLATFORM_PROXY``,
    ``MISSING_BYOK_CREDENTIAL``), :class:`WorkspaceNotFoundError`, ``InvalidInputError``,
    ``RegistryError`` when the configured registry failed to load, and
    :class:`StoreUnavailableError` on database failure.
    """
    parsed = parse_id("workspace_id", workspace_id)
    context.require_registry()
    who = audit_context or AuditContext()
    # Every database failure, an integrity error included, is StoreUnavailableError here.
    with context.store.translated_errors(), context.store.engine.begin() as connection:
        return _provision(context, connection, parsed, request_model, who, check_env)


def _provision(
    context: ServiceContext,
    connection: Connection,
    workspace_id: UUID,
    request_model: str | None,
    who: AuditContext,
    check_env: Callable[[Mapping[str, str]], None] | None,
) -> ProvisionResult:
    stored_workspaces.lock_for_provisioning(connection, workspace_id)
    state = read_workspace_state(connection, workspace_id)
    if state is None:
        raise WorkspaceNotFoundError(workspace_id)
    org_values, workspace_values = _decrypted_secrets(connection, context.key_ring, state)
    merged = merge_secret_scopes(org_values, workspace_values)
    model = effective_model(request_model, state.model, merged)
    if model is None:
        raise MissingModelError(str(workspace_id))
    inputs = stored_inputs(
        context,
        workspace_id=str(workspace_id),
        override=state.override,
        org_default=state.org_default,
        runtime=state.runtime,
        model=model,
        auth_env=frozenset(merged),
        override_expires_at=state.override_expires_at,
        now=decision_time(),
    )
    registry = context.require_registry()
    decision = resolve_billing_mode(inputs, registry, context.policy)
    env = build_provision_env(
        decision,
        workspace_id=str(workspace_id),
        runtime=state.runtime or DEFAULT_RUNTIME,
        model=model,
        merged_env=merged,
        proxy=context.deployment.proxy,
        registry=registry,
    )
    if check_env is not None:
        check_env(env.env)
    requested = request_model.strip() if request_model else None
    if requested and requested != state.model:
        _persist_model(connection, who, state, requested)

    previous = latest_provision_mode(connection, workspace_id)
    flipped_from = (
        BillingMode(previous) if previous is not None and previous != decision.mode else None
    )
    record = {
        "mode": decision.mode.value,
        "source": decision.source.value,
        "provider": decision.provider,
        "model": model,
        "policy_version": decision.versions.policy,
        "registry_version": decision.versions.registry,
        "flipped_from": None if flipped_from is None else flipped_from.value,
    }
    provision_id = insert_provision(
        connection,
        workspace_id=workspace_id,
        provisioned_at=audit.now(),
        request_id=who.request_id,
        mode=decision.mode.value,
        source=decision.source.value,
        provider=decision.provider,
        model=model,
        policy_version=decision.versions.policy,
        registry_version=decision.versions.registry,
        flipped_from=None if flipped_from is None else flipped_from.value,
    )
    audit.record(
        connection,
        who,
        "workspace.provisioned",
        org_id=state.org_id,
        workspace_id=workspace_id,
        after={**record, "provision_id": provision_id},
    )
    if flipped_from is not None:
        audit.record(
            connection,
            who,
            "workspace.billing_mode_flipped",
            org_id=state.org_id,
            workspace_id=workspace_id,
            before={"mode": flipped_from.value},
            after={"mode": decision.mode.value, "source": decision.source.value},
        )
    return ProvisionResult(env, flipped_from, provision_id)


def _decrypted_secrets(
    connection: Connection, key_ring: KeyRing, state: WorkspaceState
) -> tuple[Mapping[str, str], Mapping[str, str]]:
    org_values = {
        name: key_ring.decrypt(sealed, SecretLocation("org", state.org_id, name))
        for name, sealed in sealed_values(connection, "org", state.org_id)
    }
    workspace_values = {
        name: key_ring.decrypt(sealed, SecretLocation("workspace", state.workspace_id, name))
        for name, sealed in sealed_values(connection, "workspace", state.workspace_id)
    }
    return org_values, workspace_values


def _persist_model(
    connection: Connection, who: AuditContext, state: WorkspaceState, model: str
) -> None:
    # Later reads and re-provisions without a request model must decide on this model too.
    stored_workspaces.set_model(connection, state.workspace_id, model, updated_at=audit.now())
    audit.record(
        connection,
        who,
        "workspace.model_set",
        org_id=state.org_id,
        workspace_id=state.workspace_id,
        before={"model": state.model},
        after={"model": model},
    )
