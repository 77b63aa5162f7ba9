"""Tenant isolation, applied the same way by every route.

An object outside the caller's org is *not found* (404), exactly like one that does not exist,
so ids are never confirmed. Only on an object the caller may read does a missing capability
answer 403.
"""

from __future__ import annotations

from uuid import UUID

from llmbilling.api.auth import Principal
from llmbilling.errors import ForbiddenError, OrgNotFoundError, WorkspaceNotFoundError
from llmbilling.service import admin
from llmbilling.service.admin import WorkspaceView
from llmbilling.service.context import ServiceContext


def readable_workspace(
    context: ServiceContext, caller: Principal, workspace_id: UUID
) -> WorkspaceView:
    workspace = admin.get_workspace(context, workspace_id)
    if not caller.can_read(workspace.org_id):
        raise WorkspaceNotFoundError(workspace_id)
    return workspace


def require_readable_org(caller: Principal, org_id: UUID) -> None:
    if not caller.can_read(org_id):
        raise OrgNotFoundError(org_id)


def require(allowed: bool, action: str) -> None:
    """403 naming the action, for a caller who may read the object but not do this."""
    if not allowed:
        raise ForbiddenError(action)
