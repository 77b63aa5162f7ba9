"""The API tokens table: insert, list, lock and revoke, and the lookup by hash (one
statement, also run on the event loop by :class:`LoopReader`). Rows come back as
:class:`StoredToken` values; the scope is the stored text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Row, bindparam, insert, select, update

from llmbilling.store.change_feed import ChangeKind, StoreChange, announce
from llmbilling.store.loop_reader import LoopReader
from llmbilling.store.tables import api_tokens


@dataclass(frozen=True, slots=True)
class StoredToken:
    """A token row without its hash."""

    id: UUID
    name: str | None
    scope: str
    org_id: UUID | None
    created_at: datetime
    revoked_at: datetime | None


def insert_token(
    connection: Connection,
    *,
    token_id: UUID,
    name: str | None,
    scope: str,
    org_id: UUID | None,
    token_hash: str,
    created_at: datetime,
) -> None:
    """Add one active token in the caller's transaction."""
    connection.execute(
        insert(api_tokens).values(
            id=token_id,
            name=name,
            scope=scope,
            org_id=org_id,
            token_hash=token_hash,
            created_at=created_at,
        )
    )
    announce(connection, StoreChange(ChangeKind.TOKEN, org_id, None))


def select_tokens(connection: Connection, org_id: UUID | None) -> list[StoredToken]:
    """Every token (revoked ones included) by (created_at, id); of one org when given."""
    statement = select(api_tokens).order_by(api_tokens.c.created_at, api_tokens.c.id)
    if org_id is not None:
        statement = statement.where(api_tokens.c.org_id == org_id)
    return [_stored(row) for row in connection.execute(statement)]


def lock_token(connection: Connection, token_id: UUID) -> StoredToken | None:
    """The token row, locked for the caller's transaction (``FOR UPDATE`` on PostgreSQL), or
    None when no token has this id."""
    row = connection.execute(
        select(api_tokens).where(api_tokens.c.id == token_id).with_for_update()
    ).first()
    return None if row is None else _stored(row)


def set_revoked_at(connection: Connection, token_id: UUID, revoked_at: datetime) -> None:
    """Mark the token revoked at ``revoked_at`` in the caller's transaction."""
    org_id = connection.execute(
        update(api_tokens)
        .where(api_tokens.c.id == token_id)
        .values(revoked_at=revoked_at)
        .returning(api_tokens.c.org_id)
    ).scalar_one_or_none()
    announce(connection, StoreChange(ChangeKind.TOKEN, org_id, None))


# The unique index on token_hash finds the row. Revoked rows are returned too: a caller that
# remembers tokens must learn of a revocation, not merely miss the token.
_TOKEN_BY_HASH = select(
    api_tokens.c.id,
    api_tokens.c.scope,
    api_tokens.c.org_id,
    api_tokens.c.token_hash,
    api_tokens.c.revoked_at,
).where(api_tokens.c.token_hash == bindparam("token_hash"))


def token_row_by_hash(connection: Connection, token_hash: str) -> Sequence[Any] | None:
    """``(id, scope, org_id, token_hash, revoked_at)`` of the token with this hash, revoked
    or not, or None: one statement."""
    return connection.execute(_TOKEN_BY_HASH, {"token_hash": token_hash}).first()


async def token_row_by_hash_on_loop(reader: LoopReader, token_hash: str) -> Sequence[Any] | None:
    """:func:`token_row_by_hash` through ``reader``; ids and times may come back as text."""
    return await reader.first(_TOKEN_BY_HASH, {"token_hash": token_hash})


def _stored(row: Row[Any]) -> StoredToken:
    return StoredToken(
        id=row.id,
        name=row.name,
        scope=row.scope,
        org_id=row.org_id,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )
