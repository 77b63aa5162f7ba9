"""What every route is given: the service context, the caller, the audit context, metrics
(and, as plain helpers for the hottest route, the same taken from the request).

FastAPI runs a plain ``def`` dependency in the threadpool: a thread round trip per request.
Every dependency here is ``async def`` on the event loop; :func:`principal` reads the token's
row through the service's loop reader, which needs no thread either.
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from llmbilling.api.auth import Principal, RecentPrincipals, authenticate_on_loop
from llmbilling.api.observability import Metrics
from llmbilling.errors import StoreUnavailableError, UnauthenticatedError
from llmbilling.service.audit import AuditContext
from llmbilling.service.context import ServiceContext

_bearer = HTTPBearer(auto_error=False, description="An API token: `llmbilling token create`.")


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
    """The caller, from ``Authorization: Bearer``; 401 otherwise.

    While the store cannot answer, a token this process has already verified is accepted
    from memory (see :class:`RecentPrincipals`); any other token is a 503.
    """
    if credentials is None or not credentials.credentials:
        raise UnauthenticatedError()
    token = credentials.credentials
    recent: RecentPrincipals = request.app.state.recent_principals
    try:
        found = await authenticate_on_loop(context_of(request), token)
    except StoreUnavailableError:
        remembered = recent.recall(token)
        if remembered is None:
            raise
        found = remembered
    else:
        recent.remember(token, found)
    if found is None:
        raise UnauthenticatedError()
    request.state.token_id = found.token_id
    return found


async def audit_context(
    request: Request, caller: Annotated[Principal, Depends(principal)]
) -> AuditContext:
    return AuditContext(actor=caller.actor, request_id=str(request.state.request_id))


Context = Annotated[ServiceContext, Depends(service_context)]
Caller = Annotated[Principal, Depends(principal)]
Audit = Annotated[AuditContext, Depends(audit_context)]
AppMetrics = Annotated[Metrics, Depends(metrics)]
