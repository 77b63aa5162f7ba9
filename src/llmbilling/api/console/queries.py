"""Read-only queries the console needs and the service layer does not offer (yet).

Each runs in one autocommit read through ``service.context.reading``, so database failures
surface as ``StoreUnavailableError`` like every other use case. Cursors are keyset (never
OFFSET): a page costs the same on the first and the thousandth page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, and_, func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from llmbilling.core.decision import BillingDecision
from llmbilling.core.modes import BillingMode, DecisionSource
from llmbilling.service.context import ServiceContext, reading
from llmbilling.service.resolve import decide_from_state
from llmbilling.store.tables import (
    DEFAULT_RUNTIME,
    audit_log,
    organizations,
    provisions,
    workspaces,
)
from llmbilling.store.workspace_read import (
    WorkspaceState,
    read_workspace_state,
    read_workspace_states,
)

# Rows read per statement while filtering a fleet on its decided mode or source.
_SCAN_PAGE_SIZE = 500


@dataclass(frozen=True, slots=True)
class OrgSummary:
    id: UUID
    name: str
    billing_mode_default_raw: str | None
    workspace_count: int


@dataclass(frozen=True, slots=True)
class OrgPage:
    orgs: list[OrgSummary]
    next_after: tuple[str, UUID] | None


def org_page(
    context: ServiceContext,
    *,
    only: UUID | None,
    after: tuple[str, UUID] | None,
    limit: int,
) -> OrgPage:
    """Orgs by (name, id); ``only`` restricts the listing to one org (a tenant's token)."""
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
    with reading(context) as connection:
        rows = connection.execute(statement).all()
    orgs = [OrgSummary(row[0], row[1], row[2], row[3]) for row in rows[:limit]]
    more = len(rows) > limit
    return OrgPage(orgs, (orgs[-1].name, orgs[-1].id) if more and orgs else None)


@dataclass(frozen=True, slots=True)
class LastProvision:
    mode: BillingMode
    flipped_from: BillingMode | None
    provisioned_at: datetime


@dataclass(frozen=True, slots=True)
class FleetRow:
    workspace_id: UUID
    name: str | None
    runtime: str
    model: str | None
    override: str | None
    decision: BillingDecision
    last_provision: LastProvision | None


@dataclass(frozen=True, slots=True)
class FleetPage:
    rows: list[FleetRow]
    next_after: UUID | None


def fleet_page(
    context: ServiceContext,
    org_id: UUID,
    *,
    mode: BillingMode | None,
    source: DecisionSource | None,
    after: UUID | None,
    limit: int,
) -> FleetPage:
    """One page of an org's workspaces in id order with their current decisions.

    ``mode`` and ``source`` filter on the DECIDED values, so the scan reads pages until it
    has ``limit`` matches or runs out of workspaces.
    """
    matches: list[tuple[WorkspaceState, str | None, BillingDecision]] = []
    cursor = after
    exhausted = False
    with reading(context) as connection:
        while len(matches) <= limit and not exhausted:
            page = read_workspace_states(
                connection, org_id=org_id, after=cursor, limit=_SCAN_PAGE_SIZE
            )
            for state, name in page:
                decision = decide_from_state(context, state)
                if (mode is None or decision.mode is mode) and (
                    source is None or decision.source is source
                ):
                    matches.append((state, name, decision))
                    if len(matches) > limit:
                        break
            exhausted = len(page) < _SCAN_PAGE_SIZE
            if page:
                cursor = page[-1][0].workspace_id
        shown = matches[:limit]
        last = _last_provisions(connection, [state.workspace_id for state, _, _ in shown])
    rows = [
        FleetRow(
            workspace_id=state.workspace_id,
            name=name,
            runtime=state.runtime or DEFAULT_RUNTIME,
            model=state.model,
            override=state.override,
            decision=decision,
            last_provision=last.get(state.workspace_id),
        )
        for state, name, decision in shown
    ]
    # One match beyond the page proves there is a next page; it starts after the last shown.
    next_after = rows[-1].workspace_id if len(matches) > limit else None
    return FleetPage(rows, next_after)


def last_provision(context: ServiceContext, workspace_id: UUID) -> LastProvision | None:
    with reading(context) as connection:
        return _last_provisions(connection, [workspace_id]).get(workspace_id)


def _last_provisions(
    connection: Connection, workspace_ids: Sequence[UUID]
) -> dict[UUID, LastProvision]:
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
            provisioned_at=row.provisioned_at,
        )
        for row in rows
    }


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    occurred_at: datetime
    actor: str
    action: str
    org_id: UUID | None
    workspace_id: UUID | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str


@dataclass(frozen=True, slots=True)
class AuditPage:
    entries: list[AuditEntry]
    next_before: int | None


def audit_page(
    context: ServiceContext,
    *,
    org_id: UUID | None,
    workspace_id: UUID | None,
    before: int | None,
    limit: int,
) -> AuditPage:
    """Audit entries newest first (by id: the append order), optionally of one org/workspace."""
    statement = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit + 1)
    if org_id is not None:
        statement = statement.where(audit_log.c.org_id == org_id)
    if workspace_id is not None:
        statement = statement.where(audit_log.c.workspace_id == workspace_id)
    if before is not None:
        statement = statement.where(audit_log.c.id < before)
    with reading(context) as connection:
        rows = connection.execute(statement).all()
    entries = [
        AuditEntry(
            id=row.id,
            occurred_at=row.occurred_at,
            actor=row.actor,
            action=row.action,
            org_id=row.org_id,
            workspace_id=row.workspace_id,
            before=row.before,
            after=row.after,
            request_id=row.request_id,
        )
        for row in rows[:limit]
    ]
    more = len(rows) > limit
    return AuditPage(entries, entries[-1].id if more and entries else None)


def decision_with_override(
    context: ServiceContext, workspace_id: UUID, override: BillingMode | None
) -> BillingDecision | None:
    """What the workspace would decide with ``override`` stored instead (None = inherit).

    A preview for the confirmation step; None when the stored state cannot be read.
    """
    try:
        with context.store.read_engine.connect() as connection:
            state = read_workspace_state(connection, workspace_id)
    except SQLAlchemyError:
        return None
    if state is None:
        return None
    changed = replace(state, override=None if override is None else override.value)
    return decide_from_state(context, changed)
