"""Change plans (``change_plans``) and the versions a plan is bound to.

A plan row holds the change document, the digests of what its preview read (per input
family), the preview's summary, and who proposed, approved and applied it. The version
functions read, on the caller's connection, the rows of one scope (a workspace, an org, or the
fleet) in id order and digest them, so a plan's apply can tell which family moved.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Connection,
    RowMapping,
    Select,
    Text,
    cast,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by

from llmbilling.store.tables import (
    change_plans,
    org_secrets,
    organizations,
    workspace_secrets,
    workspaces,
)
from llmbilling.store.workspace_read import as_uuid, stored_timestamp

PLAN_STATES = ("proposed", "approved", "applied")


@dataclass(frozen=True, slots=True)
class StoredPlan:
    """A plan row as stored; ``state`` is one of :data:`PLAN_STATES` (expiry is judged by
    the reader against ``expires_at``)."""

    id: UUID
    change: dict[str, Any]
    org_id: UUID | None
    workspace_id: UUID | None
    observed: dict[str, str]
    summary: dict[str, Any]
    dangerous: bool
    state: str
    proposed_by: str
    created_at: datetime
    expires_at: datetime
    approved_by: str | None
    approved_at: datetime | None
    applied_by: str | None
    applied_at: datetime | None


def insert_plan(connection: Connection, plan: StoredPlan) -> None:
    """Add a plan in the caller's transaction."""
    connection.execute(
        insert(change_plans).values(
            id=plan.id,
            change=plan.change,
            org_id=plan.org_id,
            workspace_id=plan.workspace_id,
            observed=plan.observed,
            summary=plan.summary,
            dangerous=plan.dangerous,
            state=plan.state,
            proposed_by=plan.proposed_by,
            created_at=plan.created_at,
            expires_at=plan.expires_at,
            approved_by=plan.approved_by,
            approved_at=plan.approved_at,
            applied_by=plan.applied_by,
            applied_at=plan.applied_at,
        )
    )


def read_plan(connection: Connection, plan_id: UUID, *, lock: bool = False) -> StoredPlan | None:
    """The plan with this id (with ``lock``, its row locked for the caller's transaction:
    ``FOR UPDATE`` on PostgreSQL); None when there is none."""
    statement = select(change_plans).where(change_plans.c.id == plan_id)
    if lock:
        statement = statement.with_for_update()
    row = connection.execute(statement).first()
    return None if row is None else _stored(row._mapping)


def list_plans(
    connection: Connection, *, org_ids: Iterable[UUID] | None, limit: int
) -> list[StoredPlan]:
    """Plans newest first; of the given orgs only when ``org_ids`` is given (fleet-wide plans,
    with no org, only when it is None)."""
    statement = select(change_plans).order_by(
        change_plans.c.created_at.desc(), change_plans.c.id.desc()
    )
    if org_ids is not None:
        statement = statement.where(change_plans.c.org_id.in_(list(org_ids)))
    return [_stored(row._mapping) for row in connection.execute(statement.limit(limit))]


def mark_approved(connection: Connection, plan_id: UUID, by: str, at: datetime) -> None:
    """Record the approval (the caller holds the row lock of :func:`read_plan`)."""
    connection.execute(
        update(change_plans)
        .where(change_plans.c.id == plan_id)
        .values(state="approved", approved_by=by, approved_at=at)
    )


def mark_applied(connection: Connection, plan_id: UUID, by: str, at: datetime) -> None:
    """Record the apply (the caller holds the row lock of :func:`read_plan`)."""
    connection.execute(
        update(change_plans)
        .where(change_plans.c.id == plan_id)
        .values(state="applied", applied_by=by, applied_at=at)
    )


def _stored(row: RowMapping) -> StoredPlan:
    return StoredPlan(
        id=as_uuid(row["id"]),
        change=dict(row["change"]),
        org_id=None if row["org_id"] is None else as_uuid(row["org_id"]),
        workspace_id=None if row["workspace_id"] is None else as_uuid(row["workspace_id"]),
        observed=dict(row["observed"]),
        summary=dict(row["summary"]),
        dangerous=bool(row["dangerous"]),
        state=str(row["state"]),
        proposed_by=str(row["proposed_by"]),
        created_at=_moment(row["created_at"]),
        expires_at=_moment(row["expires_at"]),
        approved_by=row["approved_by"],
        approved_at=stored_timestamp(row["approved_at"]),
        applied_by=row["applied_by"],
        applied_at=stored_timestamp(row["applied_at"]),
    )


def _moment(raw: object) -> datetime:
    moment = stored_timestamp(raw)
    assert moment is not None
    return moment


# --- the versions of one scope -----------------------------------------------------------------


def lock_scope(connection: Connection, org_id: UUID | None, workspace_id: UUID | None) -> None:
    """Lock the scope's org row (and workspace row) for the caller's transaction, so the
    versions read next stay until it ends (every write bound to a plan locks its workspace's
    row, then its org's; SQLite's write transaction locks the database). A workspace's plan
    only shares the org row (``FOR SHARE``): two such applies in one org must not wait on
    each other to upgrade the same shared lock."""
    if org_id is not None:
        connection.execute(
            select(organizations.c.id)
            .where(organizations.c.id == org_id)
            .with_for_update(read=workspace_id is not None)
        ).first()
    if workspace_id is not None:
        connection.execute(
            select(workspaces.c.id).where(workspaces.c.id == workspace_id).with_for_update()
        ).first()


def scope_versions(
    connection: Connection, org_id: UUID | None, workspace_id: UUID | None
) -> dict[str, str]:
    """A digest per stored input family of the scope: ``orgs`` (the org rows: their
    ``row_version`` moves with the org default), ``workspaces`` (which workspaces, and their
    ``row_version``: overrides), ``secrets`` (names, key versions and times of the org's and
    the workspaces' secrets). The scope is one workspace (``workspace_id``), one org's
    workspaces (``org_id`` alone) or the fleet (neither). Any row's version or time moving,
    and any row inserted or deleted in the scope, changes its family's digest. Each family is
    one aggregate statement (the database joins the rows' text; Python hashes it)."""
    orgs = select(organizations.c.id, organizations.c.row_version)
    spaces = select(workspaces.c.id, workspaces.c.row_version)
    org_keys = select(
        org_secrets.c.org_id, org_secrets.c.key, org_secrets.c.key_version, org_secrets.c.updated_at
    )
    space_keys = select(
        workspace_secrets.c.workspace_id,
        workspace_secrets.c.key,
        workspace_secrets.c.key_version,
        workspace_secrets.c.updated_at,
    )
    if org_id is not None:
        orgs = orgs.where(organizations.c.id == org_id)
        org_keys = org_keys.where(org_secrets.c.org_id == org_id)
    if workspace_id is not None:
        spaces = spaces.where(workspaces.c.id == workspace_id)
        space_keys = space_keys.where(workspace_secrets.c.workspace_id == workspace_id)
    elif org_id is not None:
        spaces = spaces.where(workspaces.c.org_id == org_id)
        space_keys = space_keys.join(
            workspaces, workspaces.c.id == workspace_secrets.c.workspace_id
        ).where(workspaces.c.org_id == org_id)
    secrets = _digest(connection, org_keys, (org_secrets.c.org_id, org_secrets.c.key)) + _digest(
        connection, space_keys, (workspace_secrets.c.workspace_id, workspace_secrets.c.key)
    )
    return {
        "orgs": _digest(connection, orgs, (organizations.c.id,)),
        "workspaces": _digest(connection, spaces, (workspaces.c.id,)),
        "secrets": hashlib.sha256(secrets.encode()).hexdigest()[:32],
    }


_NULL_TEXT = literal_column("'~'", Text)


def _digest(
    connection: Connection, statement: Select[Any], order: tuple[ColumnElement[Any], ...]
) -> str:
    """The hash of one text the database aggregates from ``statement``'s rows in ``order``:
    each row its columns' text joined by ':', rows joined by '|' (ids, numbers, times and env
    names hold neither). One row crosses the wire, not the scope's rows. The text is the
    database's own (a plan is checked against the database it was read from)."""
    parts = [func.coalesce(cast(column, Text), _NULL_TEXT) for column in statement.selected_columns]
    line: ColumnElement[str] = parts[0]
    for part in parts[1:]:
        line = line + literal_column("':'", Text) + part
    separator = literal_column("'|'", Text)
    if connection.dialect.name == "postgresql":
        aggregated = statement.with_only_columns(
            func.string_agg(line, aggregate_order_by(separator, *order))
        )
    else:
        # SQLite before 3.44 has no ORDER BY inside an aggregate: group_concat follows the
        # order of the subquery it reads.
        ordered = statement.with_only_columns(line.label("line")).order_by(*order).subquery()
        aggregated = select(func.group_concat(ordered.c.line, separator))
    joined = connection.execute(aggregated).scalar_one()
    return hashlib.sha256(("" if joined is None else str(joined)).encode()).hexdigest()[:32]
