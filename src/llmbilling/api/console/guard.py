"""How the console refuses: failures become pages (never JSON), a missing session becomes a
trip to the login form, and every response carries the security headers.

Also the dependencies every page shares: the service context, the signed-in principal, and
the same-origin check of state-changing requests.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, cast
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.responses import RedirectResponse, Response

from llmbilling.api.auth import Principal, principal_of
from llmbilling.api.console.rendering import render, with_security_headers
from llmbilling.api.console.session import (
    CONSOLE_HOME,
    console_sessions_of,
    is_same_origin,
    session_secret,
)
from llmbilling.errors import (
    InvalidInputError,
    OrgNotFoundError,
    PreconditionFailedError,
    StoreUnavailableError,
    WorkspaceNotFoundError,
)
from llmbilling.service.console_sessions import resume_session
from llmbilling.service.context import ServiceContext


class NotSignedInError(Exception):
    """No valid session: the browser goes to the login form."""


class PageNotFoundError(Exception):
    """Unknown, malformed, or outside the token's organization: all look the same."""


class WriteForbiddenError(Exception):
    """The token may read this org but not change it."""


class CrossSiteRequestError(Exception):
    """A state-changing request that did not come from the console's own pages."""


class ConsoleRoute(APIRoute):
    """Turns the console's failures into pages (not JSON) and adds the security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except NotSignedInError:
                target = request.url.path if request.method == "GET" else CONSOLE_HOME
                if request.method == "GET" and request.url.query:
                    target = f"{target}?{request.url.query}"
                response = RedirectResponse(
                    f"/console/login?{urlencode({'next': target})}", status_code=303
                )
            except (PageNotFoundError, WorkspaceNotFoundError, OrgNotFoundError):
                response = error_page(request, 404, "Not found", "There is nothing here.")
            except WriteForbiddenError:
                response = error_page(
                    request, 403, "Not allowed", "This token may look, but not change anything."
                )
            except CrossSiteRequestError:
                response = error_page(
                    request,
                    403,
                    "Request refused",
                    "This change did not come from a console page, so it was not made.",
                )
            except PreconditionFailedError:
                response = error_page(
                    request,
                    409,
                    "Changed since you looked",
                    "This workspace's decision changed after the confirmation page was shown"
                    " (someone else changed it, or one of its inputs did). Nothing was changed:"
                    " look at it again before deciding.",
                )
            except InvalidInputError as error:
                response = error_page(request, 400, "Not understood", error.message)
            except RequestValidationError:
                response = error_page(request, 400, "Not understood", "A field was missing.")
            except StoreUnavailableError:
                response = error_page(
                    request, 503, "Store unavailable", "The database could not be reached."
                )
            return with_security_headers(response)

        return console_handler


def service_context(request: Request) -> ServiceContext:
    return cast(ServiceContext, request.app.state.context)


Context = Annotated[ServiceContext, Depends(service_context)]


def current_principal(request: Request, context: ServiceContext) -> Principal | None:
    """The principal of the request's live session (resuming it), or None."""
    secret = session_secret(request)
    if secret is None:
        return None
    sessions = console_sessions_of(request)
    token = resume_session(context, secret, policy=sessions.policy, now=sessions.now())
    return None if token is None else principal_of(token)


def signed_in(request: Request, context: Context) -> Principal:
    principal = current_principal(request, context)
    if principal is None:
        raise NotSignedInError
    request.state.console_principal = principal
    # The request log names the token, as it does for the JSON API.
    request.state.token_id = principal.token_id
    return principal


SignedIn = Annotated[Principal, Depends(signed_in)]


def same_origin(request: Request) -> None:
    if not is_same_origin(request):
        raise CrossSiteRequestError


SameOrigin = Depends(same_origin)


def error_page(request: Request, status: int, title: str, message: str) -> Response:
    principal = getattr(request.state, "console_principal", None)
    return render(
        "console_error.html",
        status_code=status,
        principal=principal,
        title=title,
        message=message,
        status=status,
    )
