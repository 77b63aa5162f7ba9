"""The provisions table: the latest recorded mode of a workspace, and one new record per
provision. Each function is one statement on the caller's connection."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection, insert, select

from llmbilling.store.tables import provisions


def latest_provision_mode(connection: Connection, workspace_id: UUID) -> str | None:
    """The mode of the workspace's most recent provision (highest id), or None."""
    mode: str | None = connection.execute(
        select(provisions.c.mode)
        .where(provisions.c.workspace_id == workspace_id)
        .order_by(provisions.c.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    return mode


def insert_provision(
    connection: Connection,
    *,
    workspace_id: UUID,
    provisioned_at: datetime,
    request_id: str,
    mode: str,
    source: str,
    provider: str | None,
    model: str,
    policy_version: str,
    registry_version: str | None,
    flipped_from: str | None,
) -> int:
    """Record one provision in the caller's transaction; returns its id (``RETURNING``)."""
    provision_id: int = connection.execute(
        insert(provisions)
        .values(
            workspace_id=workspace_id,
            provisioned_at=provisioned_at,
            request_id=request_id,
            mode=mode,
            source=source,
            provider=provider,
            model=model,
            policy_version=policy_version,
            registry_version=registry_version,
            flipped_from=flipped_from,
        )
        .returning(provisions.c.id)
    ).scalar_one()
    return provision_id
