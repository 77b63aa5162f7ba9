"""Console sessions, kept server-side: a browser that signs in with an API token is given a
session secret (256 random bits), and only the secret's SHA-256 is stored.

A session ends at logout, when its token is revoked (:func:`service.tokens.revoke_token` ends
them in its transaction; every resume also checks the token's standing), after ``idle``
without a request (activity is recorded at most once per :data:`TOUCH_GRANULARITY`), and
``lifetime`` after it started, whatever the activity. An ended session never resumes. Times
come from the caller (``now``, timezone-aware UTC): this module reads no clock.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from llmbilling.errors import InvalidInputError
from llmbilling.service.context import ServiceContext, reading, writing
from llmbilling.service.tokens import ActiveToken, Scope, presented_hash, standing_in
from llmbilling.store import console_sessions as stored_sessions

_SECRET_BYTES = 32
# Activity is recorded at most this often: a console page and its requests read the session
# without taking the store's write lock each time; the idle timeout is that much coarse.
TOUCH_GRANULARITY = timedelta(seconds=60)
# Longer than any secret we issue by a wide margin; longer input is not hashed at all.
_MAX_PRESENTED_LENGTH = 128


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """How long a session lives: ``idle`` since its last request, ``lifetime`` in all."""

    idle: timedelta
    lifetime: timedelta

    def __post_init__(self) -> None:
        for name, span in (("idle", self.idle), ("lifetime", self.lifetime)):
            if span <= timedelta(0):
                raise InvalidInputError(f"session {name}", f"must be positive, not {span}")


@dataclass(frozen=True, slots=True, repr=False)
class StartedSession:
    """A new session: ``secret`` goes into the browser's cookie and nowhere else."""

    secret: str
    token: ActiveToken
    expires_at: datetime

    def __repr__(self) -> str:
        return f"StartedSession(token={self.token!r}, expires_at={self.expires_at!r})"


def start_session(
    context: ServiceContext, token: str, *, policy: SessionPolicy, now: datetime
) -> StartedSession | None:
    """Sign in with ``token``: a new session when it is active, None otherwise (unknown and
    revoked tokens look the same). Raises ``StoreUnavailableError`` when the store cannot
    answer."""
    token_hash = presented_hash(token)
    if token_hash is None:
        return None
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    expires_at = now + policy.lifetime
    with writing(context) as connection:
        found = standing_in(connection, token_hash)
        if not isinstance(found, ActiveToken):
            return None
        stored_sessions.insert_session(
            connection,
            session_id=_session_id(secret),
            token_id=found.id,
            created_at=now,
            expires_at=expires_at,
        )
    return StartedSession(secret, found, expires_at)


def resume_session(
    context: ServiceContext, secret: str, *, policy: SessionPolicy, now: datetime
) -> ActiveToken | None:
    """The token of the live session ``secret`` names, its idle clock restarted at ``now``;
    None when there is no such session, or it ended, expired, or its token is revoked (an
    expired session is ended here). Raises ``StoreUnavailableError`` when the store cannot
    answer."""
    if not secret or len(secret) > _MAX_PRESENTED_LENGTH:
        return None
    session_id = _session_id(secret)
    with reading(context) as connection:
        found = stored_sessions.select_session(connection, session_id)
    if found is None or found.ended_at is not None:
        return None
    if found.token_revoked or _expired(found, policy, now):
        with writing(context) as connection:
            stored_sessions.end_session(connection, session_id, now)
        return None
    if now - found.last_seen_at >= TOUCH_GRANULARITY:
        with writing(context) as connection:
            stored_sessions.touch_session(connection, session_id, now)
    return ActiveToken(found.token_id, Scope(found.scope), found.org_id)


def end_session(context: ServiceContext, secret: str, *, now: datetime) -> None:
    """Log out: the session ``secret`` names ends at ``now`` (nothing happens when there is no
    such session, or it ended already)."""
    if not secret or len(secret) > _MAX_PRESENTED_LENGTH:
        return
    with writing(context) as connection:
        stored_sessions.end_session(connection, _session_id(secret), now)


def _expired(found: stored_sessions.StoredSession, policy: SessionPolicy, now: datetime) -> bool:
    return now >= found.expires_at or now - found.last_seen_at >= policy.idle


def _session_id(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
