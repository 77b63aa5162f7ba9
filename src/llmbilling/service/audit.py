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

from llmbilling.errors import InvalidInputError
from llmbilling.service.context import ServiceContext, reading
from llmbilling.store.audit import AuditEntry, insert_entry, select_entries
from llmbilling.store.engine import Connection


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
    """Append one entry inside the caller's transaction: it is written if and only if the
    change it records commits."""
    insert_entry(
        connection,
        occurred_at=now(),
        actor=audit.actor,
        action=action,
        org_id=org_id,
        workspace_id=workspace_id,
        before=before,
        after=after,
        request_id=audit.request_id,
    )


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
    since = None if since is None else _aware("since", since)
    until = None if until is None else _aware("until", until)
    with reading(context) as connection:
        return select_entries(
            connection,
            org_id=org_id,
            workspace_id=workspace_id,
            since=since,
            until=until,
            before_id=before_id,
            limit=limit,
        )


def _aware(field_name: str, moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise InvalidInputError(field_name, "needs a UTC offset (e.g. 2025-01-01T00:00:00Z)")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise InvalidInputError(field_name, "is outside the representable range") from None
