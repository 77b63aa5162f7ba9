"""The audit trail: one append-only entry per change, written in the change's transaction.

Entries hold ids, modes, names, scopes and key versions; never a secret value.
"""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, insert

from llmbilling.store.tables import audit_log


def default_actor() -> str:
    """``cli:<os user>``: who changed something when no caller identity was given."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"


@dataclass(frozen=True, slots=True)
class AuditContext:
    """Who asks, and the request id that ties the entries of one request together."""

    actor: str = field(default_factory=default_actor)
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))


def now() -> datetime:
    return datetime.now(UTC)


def record(
    connection: Connection,
    audit: AuditContext,
    action: str,
    *,
    org_id: UUID | None = None,
    workspace_id: UUID | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> None:
    """Append one entry inside the caller's transaction."""
    connection.execute(
        insert(audit_log).values(
            occurred_at=now(),
            actor=audit.actor,
            action=action,
            org_id=org_id,
            workspace_id=workspace_id,
            before=None if before is None else dict(before),
            after=None if after is None else dict(after),
            request_id=audit.request_id,
        )
    )
