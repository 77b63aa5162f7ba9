"""The console's reads: the latest provision of a page of workspaces (the store's read side,
``store/console_views.py``), and the preview of an override change. (The org
listing and search are ``service/orgs.py``'s.)

Each read runs on :meth:`Store.connection`, so database failures surface as
``StoreUnavailableError`` like every other use case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from uuid import UUID

from llmbilling.core.decision import BillingDecision
from llmbilling.core.modes import BillingMode
from llmbilling.core.provisioning import EffectiveModel
from llmbilling.errors import LlmBillingError, StoreUnavailableError
from llmbilling.service.context import ServiceContext
from llmbilling.service.resolve import decide_from_state, stored_model_origin
from llmbilling.store import console_views
from llmbilling.store.console_views import LastProvision
from llmbilling.store.workspace_read import WorkspaceState, read_workspace_state

__all__ = [
    "LastProvision",
    "WorkspaceInputs",
    "decision_with_override",
    "last_provisions",
    "workspace_inputs",
]


@dataclass(frozen=True, slots=True)
class WorkspaceInputs:
    """What the workspace page shows of a decision's stored inputs: the effective model and
    where it came from (None when a model secret cannot be decrypted), and the credential
    NAMES of each scope (registry credentials only; values are never read)."""

    model: EffectiveModel | None
    workspace_credentials: tuple[str, ...]
    org_credentials: tuple[str, ...]


def workspace_inputs(context: ServiceContext, state: WorkspaceState) -> WorkspaceInputs:
    """The page's view of ``state`` (the read path's own step one for the model)."""
    try:
        model: EffectiveModel | None = stored_model_origin(
            context,
            workspace_id=state.workspace_id,
            org_id=state.org_id,
            model=state.model,
            model_secrets=state.model_secrets,
        )
    except LlmBillingError:
        model = None
    credentials = frozenset() if context.registry is None else context.registry.all_auth_env
    return WorkspaceInputs(
        model,
        tuple(sorted(state.workspace_secret_names & credentials)),
        tuple(sorted(state.org_secret_names & credentials)),
    )


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
