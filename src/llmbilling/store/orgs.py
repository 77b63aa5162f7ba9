"""The organizations table: create, read (with its workspace count), the listing in keyset
pages, lookups by name, and the compare-and-set write of the org default. Each function is one
statement on the caller's connection.

Name lookups compare ``lower(name)``, which the ``lower(name)`` index serves (migration 0005;
``text_pattern_ops`` on PostgreSQL, so a left-anchored ``LIKE`` uses it whatever the database's
collation). On SQLite a byte range on the same expression makes the prefix use the index,
since SQLite's ``LIKE`` optimization applies to plain columns only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import ColumnElement, Connection, Select, and_, func, insert, or_, select, update

from llmbilling.store.change_feed import ChangeKind, StoreChange, announce
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
    announce(connection, StoreChange(ChangeKind.ORG_DEFAULT, org_id, None))
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
    announce(connection, StoreChange(ChangeKind.ORG_DEFAULT, org_id, None))


@dataclass(frozen=True, slots=True)
class OrgSummary:
    """One org as a listing shows it: its stored default raw, and how many workspaces."""

    id: UUID
    name: str
    billing_mode_default_raw: str | None
    workspace_count: int


@dataclass(frozen=True, slots=True)
class OrgPage:
    """A page of orgs by (name, id); ``next_after`` is the id of its last org when a next page
    follows (the cursor of that page)."""

    orgs: list[OrgSummary]
    next_after: UUID | None


def _summaries() -> Select[UUID, str, str | None, int]:
    count = (
        select(func.count())
        .select_from(workspaces)
        .where(workspaces.c.org_id == organizations.c.id)
        .scalar_subquery()
    )
    return select(
        organizations.c.id,
        organizations.c.name,
        organizations.c.llm_billing_mode_default,
        count,
    )


def org_page(
    connection: Connection,
    *,
    only: UUID | None,
    after: UUID | None,
    limit: int,
) -> OrgPage:
    """Orgs by (name, id) after the org with id ``after``, each with its workspace count;
    ``only`` restricts the listing to one org (a tenant's token). One statement; keyset paging
    on the ``(name, id)`` index, so the thousandth page costs what the first does. An ``after``
    that no org has gives an empty page (the caller checks it first)."""
    statement = _summaries().order_by(organizations.c.name, organizations.c.id).limit(limit + 1)
    if only is not None:
        statement = statement.where(organizations.c.id == only)
    if after is not None:
        cursor = organizations.alias("cursor")
        after_name = select(cursor.c.name).where(cursor.c.id == after).scalar_subquery()
        statement = statement.where(
            or_(
                organizations.c.name > after_name,
                and_(organizations.c.name == after_name, organizations.c.id > after),
            )
        )
    rows = connection.execute(statement).all()
    orgs = [OrgSummary(row[0], row[1], row[2], row[3]) for row in rows[:limit]]
    more = len(rows) > limit
    return OrgPage(orgs, orgs[-1].id if more and orgs else None)


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def name_starts_with(
    connection: Connection, name: ColumnElement[str | None], prefix: str
) -> ColumnElement[bool]:
    """``lower(name)`` starts with ``prefix`` (already lowercased), as the ``lower(name)``
    index can serve it on this connection's engine."""
    lowered = func.lower(name)
    condition: ColumnElement[bool] = lowered.like(_like_escaped(prefix) + "%", escape="\\")
    if connection.dialect.name == "sqlite" and prefix:
        # Every text that starts with the prefix sorts (bytewise) in [prefix, prefix + U+10FFFF).
        condition = and_(condition, lowered >= prefix, lowered < prefix + "\U0010ffff")
    return condition


def orgs_named(
    connection: Connection, text: str, *, only: UUID | None, prefix: bool, limit: int
) -> list[OrgSummary]:
    """Orgs whose name equals ``text`` (or, with ``prefix``, starts with it), ignoring case,
    by (name, id); at most ``limit``. ``only`` restricts the search to one org."""
    wanted = text.strip().lower()
    lowered = func.lower(organizations.c.name)
    statement = (
        _summaries()
        .where(
            name_starts_with(connection, organizations.c.name, wanted)
            if prefix
            else lowered == wanted
        )
        .order_by(organizations.c.name, organizations.c.id)
        .limit(limit)
    )
    if only is not None:
        statement = statement.where(organizations.c.id == only)
    return [OrgSummary(row[0], row[1], row[2], row[3]) for row in connection.execute(statement)]


def read_org_summary(connection: Connection, org_id: UUID) -> OrgSummary | None:
    """One org as the listing shows it, or None."""
    row = connection.execute(_summaries().where(organizations.c.id == org_id)).first()
    return None if row is None else OrgSummary(row[0], row[1], row[2], row[3])
