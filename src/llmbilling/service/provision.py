"""Provisioning (spec §4) with flip detection: read, decide, build the env, record, audit.

Everything happens in one write transaction: the workspace row is locked first (PostgreSQL;
SQLite write transactions begin IMMEDIATE), so two provisions of one workspace cannot both
miss a flip. On any error nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from llmbilling.core.modes import BillingMode
from llmbilling.core.provisioning import (
    MissingModelError,
    ProvisionEnv,
    build_provision_env,
    effective_model,
)
from llmbilling.core.secrets import merge_secret_scopes
from llmbilling.service import audit
from llmbilling.service.audit import AuditContext
from llmbilling.service.context import ServiceContext, parse_id
from llmbilling.service.errors import WorkspaceNotFoundError
from llmbilling.service.resolve import decide
from llmbilling.store.crypto import EncryptedValue, KeyRing, SecretLocation
from llmbilling.store.engine import describe_database_error
from llmbilling.store.errors import StoreUnavailableError
from llmbilling.store.tables import (
    DEFAULT_RUNTIME,
    org_secrets,
    provisions,
    workspace_secrets,
    workspaces,
)
from llmbilling.store.workspace_read import WorkspaceState, read_workspace_state


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
) -> ProvisionResult:
    """Build the env a workspace's container starts with, and record the decision.

    Raises the typed provisioning errors (``MISSING_MODEL``, ``MISSING_PLATFORM_PROXY``,
    ``MISSING_BYOK_CREDENTIAL``), :class:`WorkspaceNotFoundError`, ``InvalidInputError``,
    ``RegistryError`` when the configured registry failed to load, and
    :class:`StoreUnavailableError` on database failure.
    """
    parsed = parse_id("workspace_id", workspace_id)
    context.require_registry()
    who = audit_context or AuditContext()
    try:
        with context.store.engine.begin() as connection:
            return _provision(context, connection, parsed, request_model, who)
    except SQLAlchemyError as error:
        raise StoreUnavailableError(describe_database_error(error, context.store.url)) from None


def _provision(
    context: ServiceContext,
    connection: Connection,
    workspace_id: UUID,
    request_model: str | None,
    who: AuditContext,
) -> ProvisionResult:
    if connection.dialect.name == "postgresql":
        connection.execute(
            select(workspaces.c.id).where(workspaces.c.id == workspace_id).with_for_update()
        )
    state = read_workspace_state(connection, workspace_id)
    if state is None:
        raise WorkspaceNotFoundError(workspace_id)
    org_values, workspace_values = _decrypted_secrets(connection, context.key_ring, state)
    merged = merge_secret_scopes(org_values, workspace_values)
    model = effective_model(request_model, state.model, merged)
    if model is None:
        raise MissingModelError(str(workspace_id))
    decision = decide(context, state, model, frozenset(merged))
    env = build_provision_env(
        decision,
        workspace_id=str(workspace_id),
        runtime=state.runtime or DEFAULT_RUNTIME,
        model=model,
        merged_env=merged,
        proxy=context.deployment.proxy,
        registry=context.require_registry(),
    )
    requested = request_model.strip() if request_model else None
    if requested and requested != state.model:
        _persist_model(connection, who, state, requested)

    previous = connection.execute(
        select(provisions.c.mode)
        .where(provisions.c.workspace_id == workspace_id)
        .order_by(provisions.c.id.desc())
        .limit(1)
    ).scalar_one_or_none()
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
    provision_id = connection.execute(
        insert(provisions)
        .values(
            workspace_id=workspace_id,
            provisioned_at=audit.now(),
            request_id=who.request_id,
            **record,
        )
        .returning(provisions.c.id)
    ).scalar_one()
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
    org_rows = connection.execute(
        select(org_secrets.c.key, org_secrets.c.ciphertext, org_secrets.c.key_version).where(
            org_secrets.c.org_id == state.org_id
        )
    ).all()
    workspace_rows = connection.execute(
        select(
            workspace_secrets.c.key,
            workspace_secrets.c.ciphertext,
            workspace_secrets.c.key_version,
        ).where(workspace_secrets.c.workspace_id == state.workspace_id)
    ).all()
    org_values = {
        name: key_ring.decrypt(
            EncryptedValue(ciphertext, version), SecretLocation("org", state.org_id, name)
        )
        for name, ciphertext, version in org_rows
    }
    workspace_values = {
        name: key_ring.decrypt(
            EncryptedValue(ciphertext, version),
            SecretLocation("workspace", state.workspace_id, name),
        )
        for name, ciphertext, version in workspace_rows
    }
    return org_values, workspace_values


def _persist_model(
    connection: Connection, who: AuditContext, state: WorkspaceState, model: str
) -> None:
    # Later reads and re-provisions without a request model must decide on this model too.
    connection.execute(
        update(workspaces)
        .where(workspaces.c.id == state.workspace_id)
        .values(model=model, updated_at=audit.now(), row_version=workspaces.c.row_version + 1)
    )
    audit.record(
        connection,
        who,
        "workspace.model_set",
        org_id=state.org_id,
        workspace_id=state.workspace_id,
        before={"model": state.model},
        after={"model": model},
    )
