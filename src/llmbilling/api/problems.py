"""Every error answers in one shape: RFC 9457 problem details (``application/problem+json``).

Members: ``type`` (``urn:llmbilling:problem:<code>``), ``title`` (the status phrase),
``status``, ``code`` (our stable machine code), ``message`` (for people), ``field`` when one
input is at fault and ``allowed`` when its values are a closed set. Messages never carry a
secret value: they come from typed errors whose messages are built from ids and names only.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from types import MappingProxyType
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

from llmbilling.api.observability import Metrics
from llmbilling.errors import (
    ChangeConflictError,
    ConflictError,
    DocumentError,
    ErrorCode,
    ForbiddenError,
    InvalidInputError,
    LlmBillingError,
    MethodNotAllowedError,
    MissingModelError,
    NotFoundError,
    PreconditionFailedError,
    ProposalInvalidError,
    ProvisionError,
    RouteNotFoundError,
    SecretsError,
    StoreError,
    TooManyRequestsError,
    UnauthenticatedError,
)

PROBLEM_MEDIA_TYPE = "application/problem+json"
INTERNAL_ERROR_CODE = ErrorCode.INTERNAL_ERROR

log = structlog.get_logger()

# The HTTP status of each error family, and of the members that answer otherwise. An error's
# status is that of the first class along its MRO listed here, so a new member of a family
# answers as its family does.
STATUS_BY_ERROR: Mapping[type[LlmBillingError], int] = MappingProxyType(
    {
        # Anything not more specific is a server fault.
        LlmBillingError: 500,
        InvalidInputError: 400,
        # Well-formed, but not a valid policy or registry document.
        ProposalInvalidError: 422,
        # The deployment's own registry or policy is not valid: the server cannot answer.
        DocumentError: 503,
        UnauthenticatedError: 401,
        ForbiddenError: 403,
        NotFoundError: 404,
        MethodNotAllowedError: 405,
        ConflictError: 409,
        PreconditionFailedError: 412,
        # The org asked for more than it may right now: Retry-After says when to ask again.
        TooManyRequestsError: 429,
        # The stored state cannot be provisioned as it stands: the caller fixes the state.
        ProvisionError: 409,
        # The request (or the workspace) names no model: the caller supplies one.
        MissingModelError: 422,
        StoreError: 503,
        # A key ring or a stored secret that cannot be used is a fault, not an outage.
        SecretsError: 500,
    }
)


def status_for(error: LlmBillingError | type[LlmBillingError]) -> int:
    """The HTTP status of a typed error: its nearest class in :data:`STATUS_BY_ERROR`."""
    error_type = error if isinstance(error, type) else type(error)
    return next(STATUS_BY_ERROR[cls] for cls in error_type.__mro__ if cls in STATUS_BY_ERROR)


def problem_body(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    allowed: Any = None,
    extensions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"urn:llmbilling:problem:{code.lower().replace('_', '-')}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "code": str(code),
        "message": message,
    }
    if field is not None:
        body["field"] = field
    if allowed is not None:
        body["allowed"] = list(allowed)
    if extensions is not None:
        # RFC 9457 extension members (what moved, which danger classes): never the
        # members above.
        body.update({key: value for key, value in extensions.items() if key not in body})
    return body


def problem_response(
    request: Request | None,
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    allowed: Any = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> Response:
    """A problem response, counted in the errors metric by code."""
    if request is not None:
        metrics: Metrics = request.app.state.metrics
        metrics.count_error(code)
    return JSONResponse(
        problem_body(status, code, message, field=field, allowed=allowed, extensions=extensions),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def error_response(request: Request, error: LlmBillingError) -> Response:
    status = status_for(error)
    if status >= 500:
        log.error("request_failed", code=error.code, error_message=error.message)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(error, TooManyRequestsError):
        headers = {"Retry-After": str(error.retry_after)}
    field = error.field if isinstance(error, InvalidInputError) else None
    allowed = error.allowed if isinstance(error, InvalidInputError) else None
    extensions = error.details if isinstance(error, ChangeConflictError) else None
    return problem_response(
        request,
        status,
        error.code,
        error.message,
        field=field,
        allowed=allowed,
        headers=headers,
        extensions=extensions,
    )


async def _typed_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, LlmBillingError)
    return error_response(request, error)


async def _validation_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    first: Mapping[str, Any] = error.errors()[0] if error.errors() else {}
    if first.get("type") == "json_invalid":
        # Its location is ("body", <offset>): the field is the body, not the offset.
        return error_response(request, InvalidInputError("body", "is not valid JSON"))
    location = [str(part) for part in first.get("loc", ())]
    # ("path", "workspace_id") names the parameter; a whole-body problem names "body".
    field = location[-1] if location else "request"
    return error_response(request, InvalidInputError(field, _validation_problem(first)))


def _validation_problem(error: Mapping[str, Any]) -> str:
    """A validator's complaint in our words: no "Value error, " prefix, no regex."""
    kind = error.get("type")
    message = str(error.get("msg", "is not valid"))
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a field this request accepts"
    if kind == "string_pattern_mismatch":
        # The pattern is in the OpenAPI document; quoting a regex helps nobody reading this.
        return "contains characters, or has a form, that is not allowed here"
    return message.removeprefix("Input ")


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    headers = dict(error.headers or {})
    if error.status_code == 404:
        return problem_response(
            request, 404, RouteNotFoundError.code, f"no route {request.url.path}"
        )
    if error.status_code == 405:
        allowed = allowed_methods(request)
        if request.method == "OPTIONS":
            # OPTIONS on any resource: what it supports, no body (RFC 9110 §9.3.7).
            return Response(status_code=204, headers={"Allow": allowed})
        headers["Allow"] = allowed
        return problem_response(
            request,
            405,
            MethodNotAllowedError.code,
            f"{request.method} is not allowed on {request.url.path}",
            headers=headers,
        )
    if error.status_code == 400:
        # FastAPI's own refusal of a body it could not decode (not UTF-8, nested too deeply
        # for the JSON parser): the same problem as any other bad body.
        return error_response(
            request, InvalidInputError("body", "could not be parsed (not UTF-8 JSON?)")
        )
    code = f"HTTP_{error.status_code}"
    return problem_response(request, error.status_code, code, str(error.detail), headers=headers)


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> str:
    """The ``Allow`` value of the resource at the request's path: every method some route
    serves there, plus ``OPTIONS``, which every resource answers. (FastAPI makes one route per
    method, so Starlette's own 405 names only the first route's.) Each method is asked of the
    router as a request of it would be routed."""
    routes = request.app.router.routes
    served = {
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    }
    return ", ".join(sorted({*served, "OPTIONS"}))


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LlmBillingError, _typed_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)


# --- the OpenAPI side --------------------------------------------------------------------------

_DESCRIPTIONS: Mapping[int, str] = {
    400: "Bad input: a malformed id, an unknown mode or source, a bad cursor or body.",
    401: "No bearer token, or an unknown or revoked one.",
    403: "The token can see this org but its scope does not allow the action.",
    404: "No such object, or one outside the token's org (never confirmed either way).",
    409: "The workspace's stored state cannot be provisioned (missing credential or proxy).",
    412: "If-Match did not name the current ETag: the state changed since it was read.",
    413: "The request body is larger than 64 KiB (refused before it is parsed).",
    422: "No effective model: neither the request, the workspace nor its secrets name one.",
    429: "The org has as many what-if jobs running as it may, or starts them too fast;"
    " Retry-After gives the seconds to wait.",
    431: "The request line and headers are over 32 KiB or 100 fields (refused by the server"
    " before the app sees them; the connection is closed).",
    500: "An unexpected server fault.",
    503: "The store (or the provider registry) cannot answer; retry later.",
}
PROBLEM_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details, with our stable code.",
    "required": ["type", "title", "status", "code", "message"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string"},
        "message": {"type": "string"},
        "field": {"type": "string"},
        "allowed": {"type": "array", "items": {"type": "string"}},
    },
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for problem statuses; :func:`declare_problems` gives
    them their problem JSON body."""
    return {status: {"description": _DESCRIPTIONS[status]} for status in statuses}


def declare_problems(document: dict[str, Any]) -> dict[str, Any]:
    """Rewrite a generated OpenAPI document so every error status is problem JSON, and drop
    FastAPI's default 422 (our validation errors answer 400 problems)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = dict(PROBLEM_SCHEMA)
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            responses: dict[str, Any] = operation.get("responses", {})
            if responses.get("422", {}).get("description") == "Validation Error":
                del responses["422"]
            if "requestBody" in operation:
                responses.setdefault("413", {"description": _DESCRIPTIONS[413]})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = {
                        PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
                    }
    return document
