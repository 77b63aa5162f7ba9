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

from sqlalchemy import Connection, Row, insert, select

from llmbilling.errors import InvalidInputError
from llmbilling.service.context import ServiceContext, reading
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


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One entry as recorded. ``occurred_at`` is in UTC."""

    id: int
    occurred_at: datetime
    actor: str
    action: str
    org_id: UUID | None
    workspace_id: UUID | None
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    request_id: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "occurred_at": self.occurred_at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "org_id": None if self.org_id is None else str(self.org_id),
            "workspace_id": None if self.workspace_id is None else str(self.workspace_id),
            "before": None if self.before is None else dict(self.before),
            "after": None if self.after is None else dict(self.after),
            "request_id": self.request_id,
        }


def as_utc(moment: datetime) -> datetime:
    """A stored timestamp in UTC. SQLite hands back naive values, written in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def list_entries(
    context: ServiceContext,
    *,
    org_id: UUID | None = None,
    workspace_id: UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Entries newest first (by id), filtered; ``since`` is inclusive, ``until`` exclusive.

    ``before_id`` continues a listing after its last entry. Times must carry a UTC offset:
    a naive time is :class:`InvalidInputError`, since it could mean any zone.
    """
    if limit < 1:
        raise InvalidInputError("limit", "must be at least 1")
    statement = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if org_id is not None:
        statement = statement.where(audit_log.c.org_id == org_id)
    if workspace_id is not None:
        statement = statement.where(audit_log.c.workspace_id == workspace_id)
    if since is not None:
        statement = statement.where(audit_log.c.occurred_at >= _aware("since", since))
    if until is not None:
        statement = statement.where(audit_log.c.occurred_at < _aware("until", until))
    if before_id is not None:
        statement = statement.where(audit_log.c.id < before_id)
    with reading(context) as connection:
        return [_entry(row) for row in connection.execute(statement)]


def _aware(field_name: str, moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise InvalidInputError(field_name, "needs a UTC offset (e.g. 2025-01-01T00:00:00Z)")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise InvalidInputError(field_name, "is outside the representable range") from None


def _entry(row: Row[Any]) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        occurred_at=as_utc(row.occurred_at),
        actor=row.actor,
        action=row.action,
        org_id=row.org_id,
        workspace_id=row.workspace_id,
        before=row.before,
        after=row.after,
        request_id=row.request_id,
    )
