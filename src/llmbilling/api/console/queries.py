"""Read-only queries the console needs that the service layer does not offer (yet): the org
listing, the latest provision of a page of workspaces, and the preview of an override change.

Each read runs through ``service.context.reading``, so database failures surface as
``StoreUnavailableError`` like every other use case. The org listing pages by keyset
(name, id), never OFFSET: a page costs the same on the first and the thousandth page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from llmbilling.core.decision import BillingDecision
from llmbilling.core.modes import BillingMode
from llmbilling.service.audit import as_utc
from llmbilling.service.context import ServiceContext, reading
from llmbilling.service.resolve import decide_from_state
from llmbilling.store.tables import organizations, provisions, workspaces
from llmbilling.store.workspace_read import read_workspace_state


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


def last_provisions(
    context: ServiceContext, workspace_ids: Sequence[UUID]
) -> dict[UUID, LastProvision]:
    """The latest provision of each workspace that has one (one statement)."""
    if not workspace_ids:
        return {}
    latest = (
        select(func.max(provisions.c.id))
        .where(provisions.c.workspace_id.in_(workspace_ids))
        .group_by(provisions.c.workspace_id)
    )
    with reading(context) as connection:
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
