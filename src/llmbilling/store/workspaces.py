"""The workspaces table's writes and plain reads: create, read one row, and the
compare-and-set write of the override. (The decision read, which joins the org and the
secret names, is ``workspace_read``.) Each function is one statement on the caller's
connection."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Connection, Row, insert, select, update

from llmbilling.store.audit import as_utc
from llmbilling.store.change_feed import ChangeKind, StoreChange, announce
from llmbilling.store.engine import insert_unless_taken
from llmbilling.store.tables import DEFAULT_RUNTIME as DEFAULT_RUNTIME
from llmbilling.store.tables import organizations, workspaces


@dataclass(frozen=True, slots=True)
class StoredWorkspace:
    """A workspace row as stored (runtime and model unchecked; override raw)."""

    id: UUID
    org_id: UUID
    name: str | None
    runtime: str
    model: str | None
    override: str | None


@dataclass(frozen=True, slots=True)
class LockedOverride:
    """A workspace's org and stored override, read under the row lock."""

    org_id: UUID
    override: str | None
    expires_at: datetime | None
    """The override's expiry, in UTC."""


def insert_workspace(
    connection: Connection,
    *,
    workspace_id: UUID,
    org_id: UUID,
    name: str | None,
    runtime: str,
    model: str | None,
    override: str | None,
    stamp: datetime,
) -> bool:
    """Add a workspace in the caller's transaction; False when the id is taken (the
    transaction is then unusable: the caller must end it with an error)."""
    announce(connection, StoreChange(ChangeKind.WORKSPACE, org_id, workspace_id))
    return insert_unless_taken(
        connection,
        insert(workspaces).values(
            id=workspace_id,
            org_id=org_id,
            name=name,
            runtime=runtime,
            model=model,
            llm_billing_mode=override,
            created_at=stamp,
            updated_at=stamp,
        ),
    )


def read_workspace(connection: Connection, workspace_id: UUID) -> StoredWorkspace | None:
    """The workspace row, or None."""
    row = connection.execute(select(workspaces).where(workspaces.c.id == workspace_id)).first()
    return None if row is None else _stored(row)


def lock_override(connection: Connection, workspace_id: UUID) -> LockedOverride | None:
    """The workspace's org and override, the row locked for the caller's transaction
    (``FOR UPDATE`` on PostgreSQL), then its org's row shared (``FOR SHARE``), so an org-wide
    plan's apply, which locks the org row, excludes the write or sees it (workspace before
    org, as every writer takes them); None when no workspace has this id."""
    row = connection.execute(
        select(workspaces.c.org_id, workspaces.c.llm_billing_mode, workspaces.c.override_expires_at)
        .where(workspaces.c.id == workspace_id)
        .with_for_update()
    ).first()
    if row is None:
        return None
    connection.execute(
        select(organizations.c.id)
        .where(organizations.c.id == row.org_id)
        .with_for_update(read=True)
    ).first()
    expires_at = None if row.override_expires_at is None else as_utc(row.override_expires_at)
    return LockedOverride(row.org_id, row.llm_billing_mode, expires_at)


def write_override(
    connection: Connection,
    workspace_id: UUID,
    override: str | None,
    *,
    expires_at: datetime | None,
    updated_at: datetime,
    expected_versions: tuple[int, int] | None,
) -> bool:
    """Store the override and its expiry (None: it does not expire) and bump the workspace's
    ``row_version``. With
    ``expected_versions`` (workspace row version, org row version) only if both rows are
    still at them, checked in the UPDATE's WHERE (compare-and-set). True when written."""
    expected: list[ColumnElement[bool]] = []
    if expected_versions is not None:
        workspace_version, org_version = expected_versions
        stored_org_version = (
            select(organizations.c.row_version)
            .where(organizations.c.id == workspaces.c.org_id)
            .scalar_subquery()
        )
        expected = [
            workspaces.c.row_version == workspace_version,
            stored_org_version == org_version,
        ]
    written = connection.execute(
        update(workspaces)
        .where(workspaces.c.id == workspace_id, *expected)
        .values(
            llm_billing_mode=override,
            override_expires_at=expires_at,
            updated_at=updated_at,
            row_version=workspaces.c.row_version + 1,
        )
        .returning(workspaces.c.org_id)
    ).first()
    if written is None:
        return False
    announce(connection, StoreChange(ChangeKind.OVERRIDE, written.org_id, workspace_id))
    return True


def lock_for_provisioning(connection: Connection, workspace_id: UUID) -> None:
    """Lock the workspace row for the caller's transaction: ``FOR UPDATE`` on PostgreSQL; on
    SQLite the write transaction already holds the write lock (``BEGIN IMMEDIATE``), so no
    statement is run."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            select(workspaces.c.id).where(workspaces.c.id == workspace_id).with_for_update()
        )


def set_model(
    connection: Connection, workspace_id: UUID, model: str, *, updated_at: datetime
) -> None:
    """Store the workspace's model and bump its ``row_version``."""
    org_id = connection.execute(
        update(workspaces)
        .where(workspaces.c.id == workspace_id)
        .values(model=model, updated_at=updated_at, row_version=workspaces.c.row_version + 1)
        .returning(workspaces.c.org_id)
    ).scalar_one_or_none()
    announce(connection, StoreChange(ChangeKind.WORKSPACE, org_id, workspace_id))


def _stored(row: Row[Any]) -> StoredWorkspace:
    return StoredWorkspace(
        id=row.id,
        org_id=row.org_id,
        name=row.name,
        runtime=row.runtime,
        model=row.model,
        override=row.llm_billing_mode,
    )
