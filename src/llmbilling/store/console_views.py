"""The console's read side: listings for screens that no use case needs (cosmicpython's
"views"). Each function is one statement on a read connection and returns plain frozen
values. Callers wrap the connection in :meth:`Store.connection`, so a database failure
reaches them as ``StoreUnavailableError``. (The org listing is ``store/orgs.py``'s: the API
serves it too.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection, func, select

from llmbilling.core.modes import BillingMode
from llmbilling.store.audit import as_utc
from llmbilling.store.orgs import name_starts_with
from llmbilling.store.tables import organizations, provisions, workspaces


@dataclass(frozen=True, slots=True)
class WorkspaceMatch:
    """A workspace found by name, with its org's name for the results page."""

    id: UUID
    name: str | None
    org_id: UUID
    org_name: str


def workspaces_named(
    connection: Connection, prefix: str, *, only: UUID | None, limit: int
) -> list[WorkspaceMatch]:
    """Workspaces whose name starts with ``prefix`` (lowercased), ignoring case, by (name,
    id); at most ``limit``; ``only`` restricts the search to one org. One statement, served
    by the ``lower(name)`` index."""
    statement = (
        select(workspaces.c.id, workspaces.c.name, workspaces.c.org_id, organizations.c.name)
        .join(organizations, organizations.c.id == workspaces.c.org_id)
        .where(name_starts_with(connection, workspaces.c.name, prefix))
        .order_by(workspaces.c.name, workspaces.c.id)
        .limit(limit)
    )
    if only is not None:
        statement = statement.where(workspaces.c.org_id == only)
    return [WorkspaceMatch(row[0], row[1], row[2], row[3]) for row in connection.execute(statement)]


def workspace_org(connection: Connection, workspace_id: UUID) -> UUID | None:
    """The org of the workspace with this id, or None: one primary-key SELECT."""
    return connection.execute(
        select(workspaces.c.org_id).where(workspaces.c.id == workspace_id)
    ).scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class LastProvision:
    """A workspace's latest provision: its mode, the mode it flipped from, when (UTC)."""

    mode: BillingMode
    flipped_from: BillingMode | None
    provisioned_at: datetime


def last_provisions(
    connection: Connection, workspace_ids: Sequence[UUID]
) -> dict[UUID, LastProvision]:
    """The latest provision of each workspace that has one (one statement; none for no ids)."""
    if not workspace_ids:
        return {}
    latest = (
        select(func.max(provisions.c.id))
        .where(provisions.c.workspace_id.in_(workspace_ids))
        .group_by(provisions.c.workspace_id)
    )
    rows = connection.execute(
        select(
            provisions.c.workspace_id,
            provisions.c.mode,
            provisions.c.flipped_from,
            provisions.c.provisioned_at,
        ).where(provisions.c.id.in_(latest))
    ).all()
    return {
        row.workspace_id: LastProvision(
            mode=BillingMode(row.mode),
            flipped_from=None if row.flipped_from is None else BillingMode(row.flipped_from),
            provisioned_at=as_utc(row.provisioned_at),
        )
        for row in rows
    }
