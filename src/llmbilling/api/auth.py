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
    Scope,
    hash_token,
    verify_token,
    verify_token_on_loop,
)

__all__ = ["Principal", "RecentPrincipals", "Scope", "authenticate", "authenticate_on_loop"]


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


def authenticate(context: ServiceContext, token: str) -> Principal | None:
    """The principal of an active token, or None for an unknown or revoked one.

    Raises ``StoreUnavailableError`` when the store cannot answer.
    """
    return _principal(verify_token(context, token))


async def authenticate_on_loop(context: ServiceContext, token: str) -> Principal | None:
    """:func:`authenticate` for a coroutine (no thread hand-off)."""
    return _principal(await verify_token_on_loop(context, token))


def _principal(token: ActiveToken | None) -> Principal | None:
    return None if token is None else Principal(str(token.id), token.scope, token.org_id)


class RecentPrincipals:
    """Principals this process verified, keyed by token hash (bounded, least recent out).

    The store is asked on every request, so a revocation takes effect at once; this memory
    is consulted only while the store cannot answer, so that reads (the decision GET answers
    ``constant_fallback`` during an outage) keep working for callers already known.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._principals: OrderedDict[str, Principal] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, token: str, principal: Principal | None) -> None:
        """Record the store's answer: a principal, or None to forget the token."""
        key = hash_token(token)
        with self._lock:
            if principal is None:
                self._principals.pop(key, None)
                return
            self._principals[key] = principal
            self._principals.move_to_end(key)
            while len(self._principals) > self._capacity:
                self._principals.popitem(last=False)

    def recall(self, token: str) -> Principal | None:
        with self._lock:
            return self._principals.get(hash_token(token))
