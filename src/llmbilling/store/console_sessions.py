"""The console sessions table: start, read with the token's standing, touch, and end (one
session, or every session of a token). Keys are SHA-256 hex of the session secret; the secret
itself is never handed to this module."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection, insert, select, update

from llmbilling.store.audit import as_utc
from llmbilling.store.tables import api_tokens, console_sessions


@dataclass(frozen=True, slots=True)
class StoredSession:
    """A session row joined with its token: times in UTC, the scope as stored text."""

    token_id: UUID
    scope: str
    org_id: UUID | None
    token_revoked: bool
    last_seen_at: datetime
    expires_at: datetime
    ended_at: datetime | None


def insert_session(
    connection: Connection,
    *,
    session_id: str,
    token_id: UUID,
    created_at: datetime,
    expires_at: datetime,
) -> None:
    """Add one session in the caller's transaction, seen at ``created_at``."""
    connection.execute(
        insert(console_sessions).values(
            id=session_id,
            token_id=token_id,
            created_at=created_at,
            last_seen_at=created_at,
            expires_at=expires_at,
            ended_at=None,
        )
    )


def select_session(connection: Connection, session_id: str) -> StoredSession | None:
    """The session with this key and its token's standing (one statement), or None."""
    row = connection.execute(
        select(
            console_sessions.c.token_id,
            api_tokens.c.scope,
            api_tokens.c.org_id,
            api_tokens.c.revoked_at,
            console_sessions.c.last_seen_at,
            console_sessions.c.expires_at,
            console_sessions.c.ended_at,
        )
        .join(api_tokens, api_tokens.c.id == console_sessions.c.token_id)
        .where(console_sessions.c.id == session_id)
    ).first()
    if row is None:
        return None
    return StoredSession(
        token_id=row.token_id,
        scope=row.scope,
        org_id=row.org_id,
        token_revoked=row.revoked_at is not None,
        last_seen_at=as_utc(row.last_seen_at),
        expires_at=as_utc(row.expires_at),
        ended_at=None if row.ended_at is None else as_utc(row.ended_at),
    )


def touch_session(connection: Connection, session_id: str, seen_at: datetime) -> None:
    """Record activity: the idle timeout counts from ``seen_at``."""
    connection.execute(
        update(console_sessions)
        .where(console_sessions.c.id == session_id, console_sessions.c.ended_at.is_(None))
        .values(last_seen_at=seen_at)
    )


def end_session(connection: Connection, session_id: str, ended_at: datetime) -> None:
    """End the session (if not ended already) in the caller's transaction."""
    connection.execute(
        update(console_sessions)
        .where(console_sessions.c.id == session_id, console_sessions.c.ended_at.is_(None))
        .values(ended_at=ended_at)
    )


def end_sessions_of_token(connection: Connection, token_id: UUID, ended_at: datetime) -> None:
    """End every open session of the token in the caller's transaction."""
    connection.execute(
        update(console_sessions)
        .where(console_sessions.c.token_id == token_id, console_sessions.c.ended_at.is_(None))
        .values(ended_at=ended_at)
    )
