"""The console's read side: listings for screens that no use case needs (cosmicpython's
"views"). Each function is one statement on a read connection and returns plain frozen
values. Callers wrap the connection in :meth:`Store.connection`, so a database failure
reaches them as ``StoreUnavailableError``.

The org listing pages by keyset (name, id), never OFFSET: a page costs the same on the first
and the thousandth page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection, and_, func, or_, select

from llmbilling.core.modes import BillingMode
from llmbilling.store.audit import as_utc
from llmbilling.store.tables import organizations, provisions, workspaces


@dataclass(frozen=True, slots=True)
class OrgSummary:
    """One org as the listing shows it: its stored default raw, and how many workspaces."""

    id: UUID
    name: str
    billing_mode_default_raw: str | None
    workspace_count: int


@dataclass(frozen=True, slots=True)
class OrgPage:
    """A page of orgs by (name, id); ``next_after`` is the cursor of the next page, if any."""

    orgs: list[OrgSummary]
    next_after: tuple[str, UUID] | None


def org_page(
    connection: Connection,
    *,
    only: UUID | None,
    after: tuple[str, UUID] | None,
    limit: int,
) -> OrgPage:
    """Orgs by (name, id) after the cursor ``after``; ``only`` restricts the listing to one
    org (a tenant's token). One statement."""
    count = (
        select(func.count())
        .select_from(workspaces)
        .where(workspaces.c.org_id == organizations.c.id)
        .scalar_subquery()
    )
    statement = (
        select(
            organizations.c.id,
            organizations.c.name,
            organizations.c.llm_billing_mode_default,
            count,
        )
        .order_by(organizations.c.name, organizations.c.id)
        .limit(limit + 1)
    )
    if only is not None:
        statement = statement.where(organizations.c.id == only)
    if after is not None:
        after_name, after_id = after
        statement = statement.where(
            or_(
                organizations.c.name > after_name,
                and_(organizations.c.name == after_name, organizations.c.id > after_id),
            )
        )
    rows = connection.execute(statement).all()
    orgs = [OrgSummary(row[0], row[1], row[2], row[3]) for row in rows[:limit]]
    more = len(rows) > limit
    return OrgPage(orgs, (orgs[-1].name, orgs[-1].id) if more and orgs else None)


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
