"""The two secret tables (``org_secrets``, ``workspace_secrets``), addressed by scope: sealed
values in and out (with the fingerprint of the key that sealed them), names and key versions
for listings, the census a key ring is checked against, and the batches key rotation works
through. Every function runs on the caller's connection, one statement each (the census a few).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Table,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from llmbilling.store.change_feed import ChangeKind, StoreChange, announce
from llmbilling.store.crypto import (
    EncryptedValue,
    SealedKeyCensus,
    SecretLocation,
    SecretScopeName,
)
from llmbilling.store.tables import org_secrets, organizations, workspace_secrets, workspaces


@dataclass(frozen=True, slots=True)
class _ScopeTables:
    secrets: Table
    owners: Table
    owner_column: str

    @property
    def owner_key(self) -> Column[UUID]:
        column: Column[UUID] = self.secrets.c[self.owner_column]
        return column


_TABLES: dict[SecretScopeName, _ScopeTables] = {
    "org": _ScopeTables(org_secrets, organizations, "org_id"),
    "workspace": _ScopeTables(workspace_secrets, workspaces, "workspace_id"),
}


@dataclass(frozen=True, slots=True)
class SecretName:
    """A stored secret as a listing may show it: no value."""

    name: str
    key_version: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SealedSecretRow:
    """A stored secret with its sealed value, for re-encryption."""

    owner_id: UUID
    name: str
    sealed: EncryptedValue


def owner_org_id(connection: Connection, scope: SecretScopeName, owner: UUID) -> UUID | None:
    """The org the secret owner (an org, or a workspace) belongs to; None when no such owner."""
    tables = _TABLES[scope]
    column = tables.owners.c.id if scope == "org" else tables.owners.c.org_id
    org_id: UUID | None = connection.execute(
        select(column).where(tables.owners.c.id == owner)
    ).scalar_one_or_none()
    return org_id


def lock_owner(connection: Connection, scope: SecretScopeName, owner: UUID) -> UUID | None:
    """Lock the secret owner's rows for the caller's transaction and answer the owner's org
    (None when no such owner): a workspace's row then its org's row, an org's row alone
    (``FOR UPDATE`` on PostgreSQL; SQLite's write transaction locks the database). Every
    write that an org-wide or workspace plan is bound to holds its org's row, so a plan's
    apply, which locks the same rows before re-reading its versions, sees every secret
    written before it and excludes every one after. Workspace before org: the order the
    override write and a workspace plan's apply take them in, so no two writers deadlock."""
    org_id: UUID | None
    if scope == "workspace":
        org_id = connection.execute(
            select(workspaces.c.org_id).where(workspaces.c.id == owner).with_for_update()
        ).scalar_one_or_none()
    else:
        org_id = owner
    if org_id is None:
        return None
    locked: UUID | None = connection.execute(
        select(organizations.c.id).where(organizations.c.id == org_id).with_for_update()
    ).scalar_one_or_none()
    return locked


def _secret_change(connection: Connection, scope: SecretScopeName, owner: UUID) -> StoreChange:
    if scope == "org":
        return StoreChange(ChangeKind.SECRET, owner, None)
    return StoreChange(ChangeKind.SECRET, owner_org_id(connection, scope, owner), owner)


def stored_key_version(
    connection: Connection, scope: SecretScopeName, owner: UUID, name: str
) -> int | None:
    """The key version the owner's secret ``name`` is sealed under; None when there is none."""
    tables = _TABLES[scope]
    row = connection.execute(
        select(tables.secrets.c.key_version).where(
            tables.owner_key == owner, tables.secrets.c.key == name
        )
    ).first()
    return None if row is None else int(row[0])


def insert_secret(
    connection: Connection,
    scope: SecretScopeName,
    owner: UUID,
    name: str,
    sealed: EncryptedValue,
    updated_at: datetime,
) -> None:
    """Add the owner's secret ``name`` (it must not exist yet)."""
    tables = _TABLES[scope]
    connection.execute(
        insert(tables.secrets).values(
            {
                tables.owner_column: owner,
                "key": name,
                "ciphertext": sealed.ciphertext,
                "key_version": sealed.key_version,
                "key_fingerprint": sealed.key_fingerprint,
                "updated_at": updated_at,
            }
        )
    )
    announce(connection, _secret_change(connection, scope, owner))


def replace_secret(
    connection: Connection,
    scope: SecretScopeName,
    owner: UUID,
    name: str,
    sealed: EncryptedValue,
    updated_at: datetime,
) -> None:
    """Overwrite the sealed value of the owner's existing secret ``name``."""
    tables = _TABLES[scope]
    connection.execute(
        update(tables.secrets)
        .where(tables.owner_key == owner, tables.secrets.c.key == name)
        .values(
            ciphertext=sealed.ciphertext,
            key_version=sealed.key_version,
            key_fingerprint=sealed.key_fingerprint,
            updated_at=updated_at,
        )
    )
    announce(connection, _secret_change(connection, scope, owner))


def delete_secret(connection: Connection, scope: SecretScopeName, owner: UUID, name: str) -> bool:
    """Remove the owner's secret ``name``; False when there was none (nothing changed)."""
    tables = _TABLES[scope]
    removed = connection.execute(
        delete(tables.secrets).where(tables.owner_key == owner, tables.secrets.c.key == name)
    ).rowcount
    if removed:
        announce(connection, _secret_change(connection, scope, owner))
    return bool(removed)


def secret_names(connection: Connection, scope: SecretScopeName, owner: UUID) -> list[SecretName]:
    """The owner's secrets by name: names, key versions, update times; never values."""
    tables = _TABLES[scope]
    rows = connection.execute(
        select(tables.secrets.c.key, tables.secrets.c.key_version, tables.secrets.c.updated_at)
        .where(tables.owner_key == owner)
        .order_by(tables.secrets.c.key)
    ).all()
    return [SecretName(name, version, stamp) for name, version, stamp in rows]


def sealed_values(
    connection: Connection, scope: SecretScopeName, owner: UUID
) -> list[tuple[str, EncryptedValue]]:
    """Every secret of the owner as (name, sealed value), in the order the database returns
    them (no ORDER BY; names are unique per owner)."""
    tables = _TABLES[scope]
    secrets = tables.secrets
    rows = connection.execute(
        select(
            secrets.c.key, secrets.c.ciphertext, secrets.c.key_version, secrets.c.key_fingerprint
        ).where(tables.owner_key == owner)
    ).all()
    return [
        (name, EncryptedValue(ciphertext, version, fingerprint))
        for name, ciphertext, version, fingerprint in rows
    ]


def _not_under(secrets: Table, key_version: int, fingerprint: str) -> ColumnElement[bool]:
    # Another version, or the same version under another (or an unrecorded) key.
    return or_(
        secrets.c.key_version != key_version,
        secrets.c.key_fingerprint.is_(None),
        secrets.c.key_fingerprint != fingerprint,
    )


def secrets_not_under(
    connection: Connection,
    scope: SecretScopeName,
    key_version: int,
    fingerprint: str,
    limit: int,
) -> list[SealedSecretRow]:
    """Up to ``limit`` secrets of the scope not sealed under key ``key_version`` with
    ``fingerprint`` (another version, or no fingerprint recorded), by (owner, name)."""
    tables = _TABLES[scope]
    secrets = tables.secrets
    rows = connection.execute(
        select(
            tables.owner_key,
            secrets.c.key,
            secrets.c.ciphertext,
            secrets.c.key_version,
            secrets.c.key_fingerprint,
        )
        .where(_not_under(secrets, key_version, fingerprint))
        .order_by(tables.owner_key, secrets.c.key)
        .limit(limit)
    ).all()
    return [
        SealedSecretRow(owner, name, EncryptedValue(ciphertext, version, stored_fingerprint))
        for owner, name, ciphertext, version, stored_fingerprint in rows
    ]


def reseal_if_unchanged(
    connection: Connection,
    scope: SecretScopeName,
    row: SealedSecretRow,
    resealed: EncryptedValue,
) -> None:
    """Store ``resealed`` for the row only if it is still under the key (version and
    fingerprint) it was read under (a concurrent write wins)."""
    tables = _TABLES[scope]
    secrets = tables.secrets
    connection.execute(
        update(secrets)
        .where(
            tables.owner_key == row.owner_id,
            secrets.c.key == row.name,
            secrets.c.key_version == row.sealed.key_version,
            secrets.c.key_fingerprint.is_not_distinct_from(row.sealed.key_fingerprint),
        )
        .values(
            ciphertext=resealed.ciphertext,
            key_version=resealed.key_version,
            key_fingerprint=resealed.key_fingerprint,
        )
    )
    announce(connection, _secret_change(connection, scope, row.owner_id))


def count_not_under(
    connection: Connection, scope: SecretScopeName, key_version: int, fingerprint: str
) -> int:
    """How many secrets of the scope are not sealed under key ``key_version`` with
    ``fingerprint``."""
    secrets = _TABLES[scope].secrets
    count: int = connection.execute(
        select(func.count())
        .select_from(secrets)
        .where(_not_under(secrets, key_version, fingerprint))
    ).scalar_one()
    return count


def key_census(connection: Connection) -> SealedKeyCensus:
    """Every stored secret's key, in summary: the row count, the distinct fingerprints, and
    one sample row per key version among the rows without a fingerprint."""
    rows = 0
    fingerprints: set[str] = set()
    samples: list[tuple[SecretLocation, EncryptedValue]] = []
    for scope, tables in _TABLES.items():
        secrets = tables.secrets
        rows += connection.execute(select(func.count()).select_from(secrets)).scalar_one()
        fingerprints.update(
            connection.execute(
                select(secrets.c.key_fingerprint)
                .where(secrets.c.key_fingerprint.is_not(None))
                .distinct()
            ).scalars()
        )
        unrecorded = secrets.c.key_fingerprint.is_(None)
        versions = connection.execute(
            select(secrets.c.key_version).where(unrecorded).distinct()
        ).scalars()
        for version in list(versions):
            sample = connection.execute(
                select(tables.owner_key, secrets.c.key, secrets.c.ciphertext)
                .where(unrecorded, secrets.c.key_version == version)
                .limit(1)
            ).first()
            if sample is not None:
                owner, name, ciphertext = sample
                samples.append(
                    (SecretLocation(scope, owner, name), EncryptedValue(ciphertext, version))
                )
    return SealedKeyCensus(rows, frozenset(fingerprints), tuple(samples))
