"""Errors of the service layer's use cases."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from llmbilling.errors import LlmBillingError

NOT_FOUND_EXIT = 6


class WorkspaceNotFoundError(LlmBillingError):
    """No workspace has this id."""

    code = "WORKSPACE_NOT_FOUND"
    exit_code: ClassVar[int] = NOT_FOUND_EXIT

    def __init__(self, workspace_id: UUID) -> None:
        self.workspace_id = workspace_id
        super().__init__(f"no workspace with id {workspace_id}")


class OrgNotFoundError(LlmBillingError):
    """No organization has this id."""

    code = "ORG_NOT_FOUND"
    exit_code: ClassVar[int] = NOT_FOUND_EXIT

    def __init__(self, org_id: UUID) -> None:
        self.org_id = org_id
        super().__init__(f"no organization with id {org_id}")


class AlreadyExistsError(LlmBillingError):
    """A create named an id that is already taken."""

    code = "ALREADY_EXISTS"
    exit_code: ClassVar[int] = 1


class PreconditionFailedError(LlmBillingError):
    """A conditional write expected a version of the stored state that is no longer current."""

    code = "PRECONDITION_FAILED"
    exit_code: ClassVar[int] = 1

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} changed since it was read; read it again and retry")
