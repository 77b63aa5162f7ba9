"""The console's reads: the org listing and the latest provision of a page of workspaces (the
store's read side, ``store/console_views.py``), and the preview of an override change.

Each read runs on :meth:`Store.connection`, so database failures surface as
``StoreUnavailableError`` like every other use case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from uuid import UUID

from llmbilling.core.decision import BillingDecision
from llmbilling.core.modes import BillingMode
from llmbilling.errors import StoreUnavailableError
from llmbilling.service.context import ServiceContext
from llmbilling.service.resolve import decide_from_state
from llmbilling.store import console_views
from llmbilling.store.console_views import LastProvision, OrgPage

__all__ = ["LastProvision", "OrgPage", "decision_with_override", "last_provisions", "org_page"]
from llmbilling.store.workspace_read import read_workspace_state


def org_page(
    context: ServiceContext,
    *,
    only: UUID | None,
    after: tuple[str, UUID] | None,
    limit: int,
) -> OrgPage:
    """Orgs by (name, id); ``only`` restricts the listing to one org (a tenant's token)."""
    with context.store.connection() as connection:
        return console_views.org_page(connection, only=only, after=after, limit=limit)


def last_provisions(
    context: ServiceContext, workspace_ids: Sequence[UUID]
) -> dict[UUID, LastProvision]:
    """The latest provision of each workspace that has one (one statement)."""
    if not workspace_ids:
        return {}
    with context.store.connection() as connection:
        return console_views.last_provisions(connection, workspace_ids)


def decision_with_override(
    context: ServiceContext, workspace_id: UUID, override: BillingMode | None
) -> BillingDecision | None:
    """What the workspace would decide with ``override`` stored instead (None = inherit).

    A preview for the confirmation step; None when the stored state cannot be read.
    """
    try:
        with context.store.connection() as connection:
            state = read_workspace_state(connection, workspace_id)
    except StoreUnavailableError:
        return None
    if state is None:
        return None
    changed = replace(state, override=None if override is None else override.value)
    return decide_from_state(context, changed)
