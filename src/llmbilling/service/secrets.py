"""Secrets of orgs and workspaces: set, list (names only), and key rotation.

Values go in encrypted and never come out of this module: listings and audit entries carry
name, scope and key version only. Decryption happens in provisioning alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Table, func, insert, select, update

from llmbilling.core.provisioning import PLATFORM_ENV_PREFIX
from llmbilling.errors import InvalidInputError, LlmBillingError
from llmbilling.service import audit
from llmbilling.service.audit import AuditContext
from llmbilling.service.context import (
    ServiceContext,
    check_env_name,
    parse_id,
    reading,
    writing,
)
from llmbilling.service.errors import OrgNotFoundError, WorkspaceNotFoundError
from llmbilling.store.crypto import EncryptedValue, SecretLocation, SecretScopeName
from llmbilling.store.tables import org_secrets, organizations, workspace_secrets, workspaces

ROTATION_BATCH_SIZE = 500
SCOPES: tuple[SecretScopeName, ...] = ("org", "workspace")


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """What may be shown about a secret: never its value."""

    name: str
    scope: SecretScopeName
    owner_id: UUID
    key_version: int
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scope": self.scope,
            "owner_id": str(self.owner_id),
            "key_version": self.key_version,
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class _ScopeTables:
    secrets: Table
    owners: Table
    owner_column: str


_TABLES: dict[SecretScopeName, _ScopeTables] = {
    "org": _ScopeTables(org_secrets, organizations, "org_id"),
    "workspace": _ScopeTables(workspace_secrets, workspaces, "workspace_id"),
}


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
) -> SecretInfo:
    """Store (or replace) a secret, sealed under the newest key.

    ``MOLECULE_LLM_*`` names belong to the platform and are refused: provisioning would strip
    them anyway, so accepting one would only mislead.
    """
    owner = parse_id(f"{scope}_id", owner_id)
    check_env_name("name", name)
    if name.startswith(PLATFORM_ENV_PREFIX):
        raise InvalidInputError("name", f"{PLATFORM_ENV_PREFIX}* names belong to the platform")
    tables = _TABLES[scope]
    owner_key = tables.secrets.c[tables.owner_column]
    sealed = context.key_ring.encrypt(value, SecretLocation(scope, owner, name))
    who = audit_context or AuditContext()
    stamp = audit.now()
    with writing(context) as connection:
        org_id = _owner_org_id(connection, scope, owner)
        previous = connection.execute(
            select(tables.secrets.c.key_version).where(
                owner_key == owner, tables.secrets.c.key == name
            )
        ).first()
        if previous is None:
            connection.execute(
                insert(tables.secrets).values(
                    {
                        tables.owner_column: owner,
                        "key": name,
                        "ciphertext": sealed.ciphertext,
                        "key_version": sealed.key_version,
                        "updated_at": stamp,
                    }
                )
            )
        else:
            connection.execute(
                update(tables.secrets)
                .where(owner_key == owner, tables.secrets.c.key == name)
                .values(
                    ciphertext=sealed.ciphertext,
                    key_version=sealed.key_version,
                    updated_at=stamp,
                )
            )
        audit.record(
            connection,
            who,
            "secret.set",
            org_id=org_id,
            workspace_id=owner if scope == "workspace" else None,
            before=None
            if previous is None
            else {"name": name, "scope": scope, "key_version": previous[0]},
            after={"name": name, "scope": scope, "key_version": sealed.key_version},
        )
    return SecretInfo(name, scope, owner, sealed.key_version, stamp)


def _owner_org_id(connection: Connection, scope: SecretScopeName, owner: UUID) -> UUID:
    """The org a secret's owner belongs to; raises the owner's not-found error."""
    tables = _TABLES[scope]
    column = tables.owners.c.id if scope == "org" else tables.owners.c.org_id
    org_id: UUID | None = connection.execute(
        select(column).where(tables.owners.c.id == owner)
    ).scalar_one_or_none()
    if org_id is None:
        raise _owner_not_found(scope, owner)
    return org_id


def list_secrets(
    context: ServiceContext, scope: SecretScopeName, owner_id: str | UUID
) -> list[SecretInfo]:
    """Names, scope and key version of one owner's secrets, by name. Never values."""
    owner = parse_id(f"{scope}_id", owner_id)
    tables = _TABLES[scope]
    owner_key = tables.secrets.c[tables.owner_column]
    with reading(context) as connection:
        _owner_org_id(connection, scope, owner)
        rows = connection.execute(
            select(tables.secrets.c.key, tables.secrets.c.key_version, tables.secrets.c.updated_at)
            .where(owner_key == owner)
            .order_by(tables.secrets.c.key)
        ).all()
    return [SecretInfo(name, scope, owner, version, stamp) for name, version, stamp in rows]


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
    """Re-encrypt every secret not under the newest key, one committed batch at a time.

    Each batch is its own transaction with its own audit entry, and only rows still at their
    old version are rewritten, so an interrupted rotation loses nothing and a second run picks
    up where the first stopped. ``max_batches`` bounds the work of one call (None: until done).
    """
    if batch_size < 1:
        raise InvalidInputError("batch_size", "must be at least 1")
    key_ring = context.key_ring
    newest = key_ring.newest_version
    who = audit_context or AuditContext()
    rotated: dict[str, int] = dict.fromkeys(SCOPES, 0)
    batches = 0
    for scope in SCOPES:
        tables = _TABLES[scope]
        secrets = tables.secrets
        owner_key = secrets.c[tables.owner_column]
        while max_batches is None or batches < max_batches:
            with writing(context) as connection:
                rows = connection.execute(
                    select(owner_key, secrets.c.key, secrets.c.ciphertext, secrets.c.key_version)
                    .where(secrets.c.key_version != newest)
                    .order_by(owner_key, secrets.c.key)
                    .limit(batch_size)
                ).all()
                if not rows:
                    break
                for owner, name, ciphertext, version in rows:
                    location = SecretLocation(scope, owner, name)
                    plaintext = key_ring.decrypt(EncryptedValue(ciphertext, version), location)
                    resealed = key_ring.encrypt(plaintext, location)
                    connection.execute(
                        update(secrets)
                        .where(
                            owner_key == owner,
                            secrets.c.key == name,
                            secrets.c.key_version == version,
                        )
                        .values(ciphertext=resealed.ciphertext, key_version=resealed.key_version)
                    )
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
    """How many secrets are not yet sealed under the newest key."""
    newest = context.key_ring.newest_version
    total = 0
    with reading(context) as connection:
        for scope in SCOPES:
            secrets = _TABLES[scope].secrets
            total += connection.execute(
                select(func.count()).select_from(secrets).where(secrets.c.key_version != newest)
            ).scalar_one()
    return total
