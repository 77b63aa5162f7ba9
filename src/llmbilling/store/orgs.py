"""The organizations table: create, read (with its workspace count), and the
compare-and-set write of the org default. Each function is one statement on the caller's
connection."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection, func, insert, select, update

from llmbilling.store.engine import insert_unless_taken
from llmbilling.store.tables import organizations, workspaces


def org_exists(connection: Connection, org_id: UUID) -> bool:
    """Whether an org has this id: one primary-key SELECT."""
    row = connection.execute(select(organizations.c.id).where(organizations.c.id == org_id)).first()
    return row is not None


@dataclass(frozen=True, slots=True)
class StoredOrg:
    """An org row with its workspace count; the default is the stored text, unnormalized."""

    id: UUID
    name: str
    billing_mode_default_raw: str | None
    workspace_count: int
    created_at: datetime
    row_version: int


@dataclass(frozen=True, slots=True)
class LockedOrgDefault:
    """An org's stored default (None: the org stores none) and row version, as read under the
    row lock."""

    raw: str | None
    row_version: int


def insert_org(
    connection: Connection,
    *,
    org_id: UUID,
    name: str,
    billing_mode_default_raw: str | None,
    stamp: datetime,
) -> bool:
    """Add an org in the caller's transaction; False when the id is taken (the transaction
    is then unusable: the caller must end it with an error)."""
    return insert_unless_taken(
        connection,
        insert(organizations).values(
            id=org_id,
            name=name,
            llm_billing_mode_default=billing_mode_default_raw,
            created_at=stamp,
            updated_at=stamp,
        ),
    )


def read_org(connection: Connection, org_id: UUID) -> StoredOrg | None:
    """The org and how many workspaces it has (one statement), or None."""
    count = (
        select(func.count())
        .select_from(workspaces)
        .where(workspaces.c.org_id == organizations.c.id)
        .scalar_subquery()
    )
    row = connection.execute(
        select(organizations, count).where(organizations.c.id == org_id)
    ).first()
    if row is None:
        return None
    return StoredOrg(
        id=row.id,
        name=row.name,
        billing_mode_default_raw=row.llm_billing_mode_default,
        workspace_count=row[-1],
        created_at=row.created_at,
        row_version=row.row_version,
    )


def lock_org_default(connection: Connection, org_id: UUID) -> LockedOrgDefault | None:
    """The org's stored default, the row locked for the caller's transaction (``FOR UPDATE``
    on PostgreSQL); None when no org has this id."""
    row = connection.execute(
        select(organizations.c.llm_billing_mode_default, organizations.c.row_version)
        .where(organizations.c.id == org_id)
        .with_for_update()
    ).first()
    return None if row is None else LockedOrgDefault(row[0], row[1])


def write_org_default(
    connection: Connection,
    org_id: UUID,
    raw: str | None,
    *,
    updated_at: datetime,
) -> None:
    """Store the org's default and bump its ``row_version`` (the caller holds the row lock of
    :func:`lock_org_default`, so the version it read is the one this write moves on from)."""
    connection.execute(
        update(organizations)
        .where(organizations.c.id == org_id)
        .values(
            llm_billing_mode_default=raw,
            updated_at=updated_at,
            row_version=organizations.c.row_version + 1,
        )
    )
