"""Who is calling and what they may do: bearer tokens become a :class:`Principal`.

Scopes: ``admin`` reads and writes every org; ``org_admin`` reads and writes one org;
``provisioner`` reads one org and provisions its workspaces (the one capability that returns
secret values); ``viewer`` reads one org. Nothing else is granted anywhere.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from uuid import UUID

from llmbilling.service.context import ServiceContext
from llmbilling.service.tokens import (
    ActiveToken,
    RevokedToken,
    Scope,
    TokenStanding,
    hash_token,
    verify_token_on_loop,
)

__all__ = [
    "Principal",
    "RecentPrincipals",
    "Revoked",
    "Scope",
    "authenticate_on_loop",
    "principal_of",
]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated token: its id (never the token), scope, and org (None for admin)."""

    token_id: str
    scope: Scope
    org_id: UUID | None

    @property
    def actor(self) -> str:
        """How audit entries name this caller."""
        return f"token:{self.token_id}"

    def can_read(self, org_id: UUID) -> bool:
        """Admin: every org. Every other scope: its own org only."""
        return self.scope is Scope.ADMIN or self.org_id == org_id

    def can_write(self, org_id: UUID) -> bool:
        """Admin, or the org_admin of that org."""
        return self.scope is Scope.ADMIN or (
            self.scope is Scope.ORG_ADMIN and self.org_id == org_id
        )

    def can_provision(self, org_id: UUID) -> bool:
        """Admin, or the provisioner of that org."""
        return self.scope is Scope.ADMIN or (
            self.scope is Scope.PROVISIONER and self.org_id == org_id
        )


@dataclass(frozen=True, slots=True)
class Revoked:
    """The store says this token was revoked (as opposed to never issued)."""

    token_id: str


async def authenticate_on_loop(context: ServiceContext, token: str) -> Principal | Revoked | None:
    """The principal of an active token, :class:`Revoked` for a revoked one, None for anything
    else; read on the event loop (no thread hand-off).

    Raises ``StoreUnavailableError`` when the store cannot answer.
    """
    return _verdict(await verify_token_on_loop(context, token))


def principal_of(token: ActiveToken) -> Principal:
    """The principal an active token (or a console session's token) acts as."""
    return Principal(str(token.id), token.scope, token.org_id)


def _verdict(standing: TokenStanding) -> Principal | Revoked | None:
    if isinstance(standing, ActiveToken):
        return principal_of(standing)
    if isinstance(standing, RevokedToken):
        return Revoked(str(standing.id))
    return None


class RecentPrincipals:
    """What this process learned of tokens from the store, for when the store cannot answer.

    The store is asked on every request, so a revocation takes effect at once; this memory is
    consulted only while the store cannot answer, and only by the decision GET (which answers
    ``constant_fallback`` during an outage) — every other route then answers 503. It holds:

    - principals verified active, keyed by token hash (bounded, least recent out); a token the
      store later calls revoked or unknown is dropped;
    - the hashes of tokens the store called revoked. These are never forgotten in this
      process, so a revoked token is refused (401) even from memory. The set only grows, by
      one 64-character hash per revoked token actually presented; revocation is permanent,
      and an unknown token never enters it, so it stays as small as the revoked tokens still
      in use.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._principals: OrderedDict[str, Principal] = OrderedDict()
        self._revoked: set[str] = set()
        self._lock = threading.Lock()

    def remember(self, token: str, verdict: Principal | Revoked | None) -> None:
        """Record the store's answer about ``token``."""
        key = hash_token(token)
        with self._lock:
            if not isinstance(verdict, Principal):
                self._principals.pop(key, None)
                if isinstance(verdict, Revoked):
                    self._revoked.add(key)
                return
            self._principals[key] = verdict
            self._principals.move_to_end(key)
            while len(self._principals) > self._capacity:
                self._principals.popitem(last=False)

    def was_revoked(self, token: str) -> bool:
        """True once the store has called ``token`` revoked in this process."""
        with self._lock:
            return hash_token(token) in self._revoked

    def recall(self, token: str) -> Principal | None:
        """The principal ``token`` was last verified as; None if unknown here or revoked."""
        key = hash_token(token)
        with self._lock:
            if key in self._revoked:
                return None
            return self._principals.get(key)
