"""What every route is given: the service context, the caller, the audit context, metrics
(and, as plain helpers for the hottest route, the same taken from the request).

FastAPI runs a plain ``def`` dependency in the threadpool: a thread round trip per request.
Every dependency here is ``async def`` on the event loop; :func:`principal` reads the token's
row through the service's loop reader, which needs no thread either.

Two ways to be the caller: :data:`Caller` (every route) asks the store and answers 503 when it
cannot; :data:`DecisionCaller` (the decision GET only, which answers through an outage) may
fall back on the tokens this process verified before (:class:`RecentPrincipals`).
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from llmbilling.api.auth import Principal, RecentPrincipals, Revoked, authenticate_on_loop
from llmbilling.api.observability import Metrics
from llmbilling.errors import InvalidInputError, StoreUnavailableError, UnauthenticatedError
from llmbilling.service.audit import AuditContext
from llmbilling.service.context import ServiceContext

_bearer = HTTPBearer(auto_error=False, description="An API token: `llmbilling token create`.")


async def single_query_values(request: Request) -> None:
    """Refuse a query parameter given more than once (every route's dependency): no route
    takes a list in the query, and which of several values would count is ambiguous."""
    seen: set[str] = set()
    for name, _ in request.query_params.multi_items():
        if name in seen:
            raise InvalidInputError(name, "is given more than once; give it once")
        seen.add(name)


def context_of(request: Request) -> ServiceContext:
    return cast(ServiceContext, request.app.state.context)


def metrics_of(request: Request) -> Metrics:
    return cast(Metrics, request.app.state.metrics)


async def service_context(request: Request) -> ServiceContext:
    return context_of(request)


async def metrics(request: Request) -> Metrics:
    return metrics_of(request)


async def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from ``Authorization: Bearer``; 401 otherwise, 503 when the store cannot
    say."""
    return await _caller(request, credentials, from_memory=False)


async def decision_reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """:func:`principal`, except that while the store cannot answer, a token this process
    verified before is accepted from memory (a token it saw revoked never is)."""
    return await _caller(request, credentials, from_memory=True)


async def _caller(
    request: Request, credentials: HTTPAuthorizationCredentials | None, *, from_memory: bool
) -> Principal:
    if credentials is None or not credentials.credentials:
        raise UnauthenticatedError()
    token = credentials.credentials
    recent: RecentPrincipals = request.app.state.recent_principals
    found: Principal | Revoked | None
    try:
        found = await authenticate_on_loop(context_of(request), token)
    except StoreUnavailableError:
        if recent.was_revoked(token):
            raise UnauthenticatedError() from None
        remembered = recent.recall(token) if from_memory else None
        if remembered is None:
            raise
        found = remembered
    else:
        recent.remember(token, found)
    if not isinstance(found, Principal):
        raise UnauthenticatedError()
    request.state.token_id = found.token_id
    return found


async def audit_context(
    request: Request, caller: Annotated[Principal, Depends(principal)]
) -> AuditContext:
    return AuditContext(actor=caller.actor, request_id=str(request.state.request_id))


Context = Annotated[ServiceContext, Depends(service_context)]
Caller = Annotated[Principal, Depends(principal)]
DecisionCaller = Annotated[Principal, Depends(decision_reader)]
Audit = Annotated[AuditContext, Depends(audit_context)]
AppMetrics = Annotated[Metrics, Depends(metrics)]
