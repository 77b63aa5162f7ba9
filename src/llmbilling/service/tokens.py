"""API bearer tokens: create (shown once), list, revoke, verify. Every write is audited.

A token is ``llmb_`` + 43 URL-safe characters (256 random bits). Only its SHA-256 is stored:
a leaked database does not hand out working tokens, and a lookup by hash needs no secret key
(the token's entropy, not the hash, is what makes it unguessable).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from llmbilling.errors import InvalidInputError, OrgNotFoundError, TokenNotFoundError
from llmbilling.service import audit
from llmbilling.service.audit import AuditContext
from llmbilling.service.context import (
    ServiceContext,
    parse_id,
    reading,
    translated_store_errors,
    writing,
)
from llmbilling.store import console_sessions as stored_sessions
from llmbilling.store import tokens as stored_tokens
from llmbilling.store.engine import Connection
from llmbilling.store.orgs import org_exists
from llmbilling.store.tokens import StoredToken
from llmbilling.store.workspace_read import as_uuid

TOKEN_PREFIX = "llmb_"
_TOKEN_BYTES = 32
# Longer than any token we issue by a wide margin; longer input is not hashed at all.
_MAX_PRESENTED_LENGTH = 256


class Scope(StrEnum):
    """What a token may do. ``admin`` spans every org; the others are bound to one org."""

    ADMIN = "admin"
    ORG_ADMIN = "org_admin"
    PROVISIONER = "provisioner"
    VIEWER = "viewer"


SCOPE_VALUES: tuple[str, ...] = tuple(scope.value for scope in Scope)


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What may be shown about a token: never the token, never its hash."""

    id: UUID
    name: str | None
    scope: Scope
    org_id: UUID | None
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "scope": self.scope.value,
            "org_id": None if self.org_id is None else str(self.org_id),
            "created_at": self.created_at.isoformat(),
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
        }


@dataclass(frozen=True, slots=True, repr=False)
class IssuedToken:
    """A new token: ``token`` is the only copy there will ever be; ``repr`` hides it."""

    info: TokenInfo
    token: str

    def __repr__(self) -> str:
        return f"IssuedToken(info={self.info!r}, token=<hidden>)"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_scope(scope: str) -> Scope:
    try:
        return Scope(scope)
    except ValueError:
        raise InvalidInputError("scope", f"{scope!r} is not a scope", SCOPE_VALUES) from None


def create_token(
    context: ServiceContext,
    *,
    scope: Scope | str,
    org_id: str | UUID | None = None,
    name: str | None = None,
    audit_context: AuditContext | None = None,
) -> IssuedToken:
    """Issue a token. ``admin`` takes no org; every other scope needs an existing org."""
    parsed_scope = parse_scope(scope)
    parsed_org = None if org_id is None else parse_id("org_id", org_id)
    if parsed_scope is Scope.ADMIN and parsed_org is not None:
        raise InvalidInputError("org_id", "an admin token spans every org; give no org")
    if parsed_scope is not Scope.ADMIN and parsed_org is None:
        raise InvalidInputError("org_id", f"a {parsed_scope.value} token needs an org")
    label = name.strip() if name and name.strip() else None
    token = TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
    info = TokenInfo(
        id=uuid.uuid4(),
        name=label,
        scope=parsed_scope,
        org_id=parsed_org,
        created_at=audit.now(),
        revoked_at=None,
    )
    who = audit_context or AuditContext()
    with writing(context) as connection:
        if parsed_org is not None and not org_exists(connection, parsed_org):
            raise OrgNotFoundError(parsed_org)
        stored_tokens.insert_token(
            connection,
            token_id=info.id,
            name=label,
            scope=parsed_scope.value,
            org_id=parsed_org,
            token_hash=hash_token(token),
            created_at=info.created_at,
        )
        audit.record(connection, who, "token.created", org_id=parsed_org, after=_audited(info))
    return IssuedToken(info, token)


def list_tokens(context: ServiceContext, *, org_id: str | UUID | None = None) -> list[TokenInfo]:
    """Every token (revoked ones included), oldest first; optionally of one org only."""
    parsed_org = None if org_id is None else parse_id("org_id", org_id)
    with reading(context) as connection:
        return [_info(row) for row in stored_tokens.select_tokens(connection, parsed_org)]


def revoke_token(
    context: ServiceContext, token_id: str | UUID, *, audit_context: AuditContext | None = None
) -> TokenInfo:
    """Revoke a token; it stops working at once and its console sessions end in the same
    transaction. Revoking a revoked token changes nothing."""
    parsed = parse_id("token_id", token_id)
    who = audit_context or AuditContext()
    with writing(context) as connection:
        row = stored_tokens.lock_token(connection, parsed)
        if row is None:
            raise TokenNotFoundError(parsed)
        if row.revoked_at is not None:
            return _info(row)
        stamp = audit.now()
        stored_tokens.set_revoked_at(connection, parsed, stamp)
        stored_sessions.end_sessions_of_token(connection, parsed, stamp)
        audit.record(
            connection,
            who,
            "token.revoked",
            org_id=row.org_id,
            before={"token_id": str(parsed), "revoked_at": None},
            after={"token_id": str(parsed), "revoked_at": stamp.isoformat()},
        )
    return TokenInfo(row.id, row.name, Scope(row.scope), row.org_id, row.created_at, stamp)


@dataclass(frozen=True, slots=True)
class ActiveToken:
    """A token verification found active: what authorization needs, nothing more."""

    id: UUID
    scope: Scope
    org_id: UUID | None


@dataclass(frozen=True, slots=True)
class RevokedToken:
    """A token verification found revoked (as opposed to unknown): its id only."""

    id: UUID


TokenStanding = ActiveToken | RevokedToken | None
"""What verification found: an active token, a revoked one, or no such token (None)."""


def verify_token(context: ServiceContext, token: str) -> TokenStanding:
    """The standing of ``token``. Raises ``StoreUnavailableError`` when the store cannot
    answer (callers decide what an outage means for them)."""
    presented = presented_hash(token)
    if presented is None:
        return None
    with reading(context) as connection:
        return standing_in(connection, presented)


async def verify_token_on_loop(context: ServiceContext, token: str) -> TokenStanding:
    """:func:`verify_token` for a coroutine, read through the loop's reader (no thread
    hand-off), or taken from ``context.decision_cache`` while that serves (a revocation drops
    it there before the revoke returns, and on other processes when the change feed tells)."""
    presented = presented_hash(token)
    if presented is None:
        return None
    cache = context.decision_cache
    reader = context.loop_reader()
    cache.catch_up(reader)
    kept = cache.token(presented)
    if kept is not None:
        return kept
    ticket = cache.ticket()
    with translated_store_errors(context):
        row = await stored_tokens.token_row_by_hash_on_loop(reader, presented)
    standing = _standing(row, presented)
    if standing is not None:
        cache.keep_token(ticket, presented, standing)
    return standing


def standing_in(connection: Connection, token_hash: str) -> TokenStanding:
    """:func:`verify_token` by hash (:func:`presented_hash`) inside the caller's connection or
    transaction."""
    return _standing(stored_tokens.token_row_by_hash(connection, token_hash), token_hash)


def presented_hash(token: str) -> str | None:
    """The hash to look up, or None for anything not shaped like a token we issue."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > _MAX_PRESENTED_LENGTH:
        return None
    return hash_token(token)


def _standing(row: Sequence[Any] | None, presented: str) -> TokenStanding:
    """A token row (``store.tokens.token_row_by_hash``), typed or as the driver gives it."""
    if row is None:
        return None
    token_id, scope, org_id, token_hash, revoked_at = row
    # The final comparison does not leak how much of the hash the index matched.
    if not hmac.compare_digest(token_hash, presented):
        return None
    if revoked_at is not None:
        return RevokedToken(as_uuid(token_id))
    return ActiveToken(as_uuid(token_id), Scope(scope), None if org_id is None else as_uuid(org_id))


def _info(row: StoredToken) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        scope=Scope(row.scope),
        org_id=row.org_id,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def _audited(info: TokenInfo) -> dict[str, Any]:
    return {
        "token_id": str(info.id),
        "name": info.name,
        "scope": info.scope.value,
        "org_id": None if info.org_id is None else str(info.org_id),
    }
