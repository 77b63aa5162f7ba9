"""The audit log table's two uses: append one entry in the caller's transaction, and list
entries newest first. Entries are never changed (the table's triggers refuse it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Row, insert, select

from llmbilling.store.tables import audit_log


def as_utc(moment: datetime) -> datetime:
    """A stored timestamp in UTC. SQLite hands back naive values, written in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


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

    @property
    def reason(self) -> str | None:
        """Why the change was made, when the writer said (kept in ``after``)."""
        reason = None if self.after is None else self.after.get("reason")
        return reason if isinstance(reason, str) else None

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
            "reason": self.reason,
            "request_id": self.request_id,
        }


def insert_entry(
    connection: Connection,
    *,
    occurred_at: datetime,
    actor: str,
    action: str,
    org_id: UUID | None,
    workspace_id: UUID | None,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    request_id: str,
) -> None:
    """Append one entry on ``connection``: it commits or rolls back with the caller's
    transaction, never on its own."""
    connection.execute(
        insert(audit_log).values(
            occurred_at=occurred_at,
            actor=actor,
            action=action,
            org_id=org_id,
            workspace_id=workspace_id,
            before=None if before is None else dict(before),
            after=None if after is None else dict(after),
            request_id=request_id,
        )
    )


def select_entries(
    connection: Connection,
    *,
    org_id: UUID | None,
    workspace_id: UUID | None,
    since: datetime | None,
    until: datetime | None,
    before_id: int | None,
    limit: int,
) -> list[AuditEntry]:
    """At most ``limit`` entries newest first (by id), in one statement; each filter given
    narrows it: ``since`` inclusive, ``until`` exclusive (both aware), ``before_id``
    exclusive."""
    statement = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if org_id is not None:
        statement = statement.where(audit_log.c.org_id == org_id)
    if workspace_id is not None:
        statement = statement.where(audit_log.c.workspace_id == workspace_id)
    if since is not None:
        statement = statement.where(audit_log.c.occurred_at >= since)
    if until is not None:
        statement = statement.where(audit_log.c.occurred_at < until)
    if before_id is not None:
        statement = statement.where(audit_log.c.id < before_id)
    return [_entry(row) for row in connection.execute(statement)]


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
