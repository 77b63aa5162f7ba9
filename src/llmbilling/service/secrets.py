"""Secrets of orgs and workspaces: set, list (names only), and key rotation.

Values go in encrypted and never come out of this module: listings and audit entries carry
name, scope and key version only. Decryption happens in provisioning alone — but for
:data:`MODEL_NAMES`.

``MOLECULE_MODEL`` and ``MODEL`` name the model a workspace runs (spec §4 reads the effective
model from them; molecule-core kept it there). A model is configuration, not a credential: it
is stored in the same tables, sealed like every row, and shown as configuration — in every
decision record (for every reader) and in these listings, with its value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from llmbilling.core.provisioning import MODEL_ENV, MOLECULE_MODEL_ENV, PLATFORM_ENV_PREFIX
from llmbilling.errors import (
    InvalidInputError,
    LlmBillingError,
    OrgNotFoundError,
    WorkspaceNotFoundError,
)
from llmbilling.service import audit
from llmbilling.service.admin import parse_reason, with_reason
from llmbilling.service.audit import AuditContext
from llmbilling.service.context import (
    ServiceContext,
    check_env_name,
    parse_id,
    reading,
    writing,
)
from llmbilling.store import secrets as stored_secrets
from llmbilling.store.crypto import SecretLocation, SecretScopeName
from llmbilling.store.engine import Connection

ROTATION_BATCH_SIZE = 500
SCOPES: tuple[SecretScopeName, ...] = ("org", "workspace")
# Configuration kept among the secrets: their values are model names, shown to readers.
MODEL_NAMES = frozenset({MOLECULE_MODEL_ENV, MODEL_ENV})


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """What may be shown about a secret: never its value. ``value`` is set for the
    :data:`MODEL_NAMES` alone (a model name is configuration), and None for every secret."""

    name: str
    scope: SecretScopeName
    owner_id: UUID
    key_version: int
    updated_at: datetime
    value: str | None = None

    def to_dict(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "name": self.name,
            "scope": self.scope,
            "owner_id": str(self.owner_id),
            "key_version": self.key_version,
            "updated_at": self.updated_at.isoformat(),
        }
        if self.value is not None:
            shown["value"] = self.value
        return shown


def _owner_not_found(scope: SecretScopeName, owner_id: UUID) -> LlmBillingError:
    return OrgNotFoundError(owner_id) if scope == "org" else WorkspaceNotFoundError(owner_id)


def set_secret(
    context: ServiceContext,
    scope: SecretScopeName,
    owner_id: str | UUID,
    name: str,
    value: str,
    *,
    audit_context: AuditContext | None = None,
    reason: str | None = None,
    under_lock: Callable[[Connection], None] | None = None,
) -> SecretInfo:
    """Store (or replace) a secret, sealed under the newest key.

    ``MOLECULE_LLM_*`` names belong to the platform and are refused: provisioning would strip
    them anyway, so accepting one would only mislead. A blank value (empty or white space) of
    any other secret than the :data:`MODEL_NAMES` is refused too: provisioning treats it as
    absent, while the provisioning verdict of every decision, judged by names alone, would
    count it present. The owner's rows are locked first (:func:`_locked_owner_org_id`).
    ``under_lock`` is called with the write's connection once the owner is found and locked,
    before anything changes, and may raise (a change plan's version check, the danger guard).
    ``reason`` (see :func:`admin.parse_reason`) is kept in the audit entry.
    """
    owner = parse_id(f"{scope}_id", owner_id)
    why = parse_reason(reason)
    check_env_name("name", name)
    if name.startswith(PLATFORM_ENV_PREFIX):
        raise InvalidInputError("name", f"{PLATFORM_ENV_PREFIX}* names belong to the platform")
    if not value.strip() and name not in MODEL_NAMES:
        # A blank model is meaningful (the next model source applies) and read as blank.
        raise InvalidInputError(
            "value", "must not be blank: a blank secret counts as absent when provisioning"
        )
    sealed = context.key_ring.encrypt(value, SecretLocation(scope, owner, name))
    who = audit_context or AuditContext()
    stamp = audit.now()
    with writing(context) as connection:
        org_id = _locked_owner_org_id(connection, scope, owner)
        if under_lock is not None:
            under_lock(connection)
        previous = stored_secrets.stored_key_version(connection, scope, owner, name)
        if previous is None:
            stored_secrets.insert_secret(connection, scope, owner, name, sealed, stamp)
        else:
            stored_secrets.replace_secret(connection, scope, owner, name, sealed, stamp)
        audit.record(
            connection,
            who,
            "secret.set",
            org_id=org_id,
            workspace_id=owner if scope == "workspace" else None,
            before=None
            if previous is None
            else {"name": name, "scope": scope, "key_version": previous},
            after=with_reason(
                {"name": name, "scope": scope, "key_version": sealed.key_version}, why
            ),
        )
    shown = value if name in MODEL_NAMES else None
    return SecretInfo(name, scope, owner, sealed.key_version, stamp, shown)


def delete_secret(
    context: ServiceContext,
    scope: SecretScopeName,
    owner_id: str | UUID,
    name: str,
    *,
    audit_context: AuditContext | None = None,
    reason: str | None = None,
    under_lock: Callable[[Connection], None] | None = None,
) -> bool:
    """Remove a secret; False when the owner has none of that name (nothing changes, no
    audit entry). Locks, ``under_lock`` and ``reason`` as :func:`set_secret` has them."""
    owner = parse_id(f"{scope}_id", owner_id)
    why = parse_reason(reason)
    check_env_name("name", name)
    who = audit_context or AuditContext()
    with writing(context) as connection:
        org_id = _locked_owner_org_id(connection, scope, owner)
        if under_lock is not None:
            under_lock(connection)
        previous = stored_secrets.stored_key_version(connection, scope, owner, name)
        if previous is None:
            return False
        stored_secrets.delete_secret(connection, scope, owner, name)
        audit.record(
            connection,
            who,
            "secret.deleted",
            org_id=org_id,
            workspace_id=owner if scope == "workspace" else None,
            before={"name": name, "scope": scope, "key_version": previous},
            after=None if why is None else with_reason({}, why),
        )
    return True


def _locked_owner_org_id(connection: Connection, scope: SecretScopeName, owner: UUID) -> UUID:
    """The org a secret's owner belongs to, the owner's rows locked for the write's
    transaction (``store.secrets.lock_owner``: a change plan's apply locks the same rows
    before it re-reads the versions it was bound to); raises the owner's not-found error."""
    org_id = stored_secrets.lock_owner(connection, scope, owner)
    if org_id is None:
        raise _owner_not_found(scope, owner)
    return org_id


def _owner_org_id(connection: Connection, scope: SecretScopeName, owner: UUID) -> UUID:
    """The org a secret's owner belongs to (nothing locked); raises the owner's not-found
    error."""
    org_id = stored_secrets.owner_org_id(connection, scope, owner)
    if org_id is None:
        raise _owner_not_found(scope, owner)
    return org_id


def list_secrets(
    context: ServiceContext, scope: SecretScopeName, owner_id: str | UUID
) -> list[SecretInfo]:
    """Names, scope and key version of one owner's secrets, by name; never a secret's value,
    but the model of the :data:`MODEL_NAMES` (configuration) with theirs."""
    owner = parse_id(f"{scope}_id", owner_id)
    with reading(context) as connection:
        _owner_org_id(connection, scope, owner)
        rows = stored_secrets.secret_names(connection, scope, owner)
        sealed = (
            {
                name: value
                for name, value in stored_secrets.sealed_values(connection, scope, owner)
                if name in MODEL_NAMES
            }
            if any(row.name in MODEL_NAMES for row in rows)
            else {}
        )
    models = {
        name: context.key_ring.decrypt(value, SecretLocation(scope, owner, name))
        for name, value in sealed.items()
    }
    return [
        SecretInfo(row.name, scope, owner, row.key_version, row.updated_at, models.get(row.name))
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class RotationReport:
    newest_version: int
    rotated: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.rotated.values())


def rotate_secrets(
    context: ServiceContext,
    *,
    batch_size: int = ROTATION_BATCH_SIZE,
    max_batches: int | None = None,
    audit_context: AuditContext | None = None,
) -> RotationReport:
    """Re-encrypt every secret not under the newest key (another version, or no or another
    fingerprint), one committed batch at a time.

    Each batch is its own transaction with its own audit entry, and only rows still at their
    old version are rewritten, so an interrupted rotation loses nothing and a second run picks
    up where the first stopped. ``max_batches`` bounds the work of one call (None: until done).
    """
    if batch_size < 1:
        raise InvalidInputError("batch_size", "must be at least 1")
    key_ring = context.key_ring
    newest, fingerprint = key_ring.newest_version, key_ring.newest_fingerprint
    who = audit_context or AuditContext()
    rotated: dict[str, int] = dict.fromkeys(SCOPES, 0)
    batches = 0
    for scope in SCOPES:
        while max_batches is None or batches < max_batches:
            with writing(context) as connection:
                rows = stored_secrets.secrets_not_under(
                    connection, scope, newest, fingerprint, batch_size
                )
                if not rows:
                    break
                for row in rows:
                    location = SecretLocation(scope, row.owner_id, row.name)
                    plaintext = key_ring.decrypt(row.sealed, location)
                    resealed = key_ring.encrypt(plaintext, location)
                    stored_secrets.reseal_if_unchanged(connection, scope, row, resealed)
                audit.record(
                    connection,
                    who,
                    "secrets.rotated",
                    after={"scope": scope, "count": len(rows), "key_version": newest},
                )
            rotated[scope] += len(rows)
            batches += 1
    return RotationReport(newest, rotated)


def pending_rotation(context: ServiceContext) -> int:
    """How many secrets are not yet sealed under the newest key (its version and fingerprint)."""
    key_ring = context.key_ring
    newest, fingerprint = key_ring.newest_version, key_ring.newest_fingerprint
    total = 0
    with reading(context) as connection:
        for scope in SCOPES:
            total += stored_secrets.count_not_under(connection, scope, newest, fingerprint)
    return total
