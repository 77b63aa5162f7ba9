"""The admin HTTP service: ``create_app`` builds the FastAPI application.

The app holds one :class:`ServiceContext` (``app.state.context``), its own Prometheus
registry (``app.state.metrics``), the memory of recently verified tokens that keeps reads
working through a store outage (``app.state.recent_principals``), the stored what-if jobs
and this process's worker (``app.state.whatif_jobs``). Each server's shutdown closes the
context's reader of the event loop it served on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi

from llmbilling.api.auth import RecentPrincipals
from llmbilling.api.console.plan_pages import router as console_plan_router
from llmbilling.api.console.routes import root_router as console_root_router
from llmbilling.api.console.routes import router as console_router
from llmbilling.api.console.session import ConsoleSessions
from llmbilling.api.console.whatif_pages import router as console_whatif_router
from llmbilling.api.dependencies import single_query_values
from llmbilling.api.docs_pages import router as docs_router
from llmbilling.api.limits import (
    MAX_REQUEST_BODY_BYTES,
    REQUEST_TOO_LARGE_CODE,
    RequestBodyLimit,
)
from llmbilling.api.observability import Metrics, RequestObservability
from llmbilling.api.problems import (
    INTERNAL_ERROR_CODE,
    declare_problems,
    install_problem_handlers,
    problem_body,
)
from llmbilling.api.routes import OFREP_ROUTER, ROUTERS
from llmbilling.api.schemas import proposal_document_schemas
from llmbilling.config.settings import Settings
from llmbilling.service.context import ServiceContext
from llmbilling.service.whatif_jobs import JobLease, WhatIfJobs, WhatIfLimits

API_TITLE = "llmbilling admin API"
API_DESCRIPTION = (
    "Who pays for a workspace's LLM calls, decided exactly and explained. Every `/v1` route"
    " needs `Authorization: Bearer <token>`; errors are RFC 9457 problem details."
)


def create_app(
    settings: Settings | None = None, *, context: ServiceContext | None = None
) -> FastAPI:
    """The application over ``context``, or over a context built from ``settings`` (read
    from the environment when None); a context built here is closed at shutdown."""
    owned = context is None
    service_context = context or ServiceContext.from_settings(settings or Settings())

    job_settings = settings or Settings()
    whatif_jobs = WhatIfJobs(
        service_context,
        WhatIfLimits.from_settings(job_settings),
        JobLease.from_settings(job_settings),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Every replica works on the stored queue, whichever replica a job was started on.
        whatif_jobs.open()
        try:
            yield
        finally:
            # Each server shuts down on the loop it served on: that loop's reader goes.
            await service_context.close_loop_reader()
            whatif_jobs.close()
            if owned:
                service_context.close()

    app = FastAPI(
        title=API_TITLE,
        description=API_DESCRIPTION,
        version=version("llmbilling"),
        openapi_url="/openapi.json",
        # Served by api/docs_pages.py from packaged assets, not FastAPI's CDN-loading pages.
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.context = service_context
    app.state.metrics = Metrics()
    app.state.recent_principals = RecentPrincipals()
    app.state.console_sessions = ConsoleSessions.from_settings(settings or Settings())
    app.state.whatif_jobs = whatif_jobs
    install_problem_handlers(app)
    # Inside the observability middleware, so a refused body is logged and counted like any
    # other answer (and carries its request id).
    app.add_middleware(
        RequestBodyLimit,
        too_large=problem_body(
            413,
            REQUEST_TOO_LARGE_CODE,
            f"the request body is larger than {MAX_REQUEST_BODY_BYTES} bytes",
        ),
        on_refused=lambda: app.state.metrics.count_error(REQUEST_TOO_LARGE_CODE),
    )
    app.add_middleware(
        RequestObservability,
        metrics=app.state.metrics,
        internal_error=problem_body(500, INTERNAL_ERROR_CODE, "an unexpected error occurred"),
    )
    # First: a request walks the routers in order until one matches, and OFREP's flags are
    # polled as often as the decision GET (which leads ROUTERS).
    app.include_router(OFREP_ROUTER)
    # A query parameter given twice is refused on our own routes (400 naming it); OFREP's
    # routes keep the OFREP document's answers.
    for router in ROUTERS:
        app.include_router(router, dependencies=[Depends(single_query_values)])
    # The web console (HTML pages under /console/) is included here.
    app.include_router(console_router)
    app.include_router(console_root_router)
    app.include_router(console_whatif_router)
    app.include_router(console_plan_router)
    app.include_router(docs_router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                description=app.description,
                routes=app.routes,
            )
            document.setdefault("components", {}).setdefault("schemas", {}).update(
                proposal_document_schemas()
            )
            app.openapi_schema = declare_problems(_parameters_without_null(document))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _parameters_without_null(document: dict[str, Any]) -> dict[str, Any]:
    """Drop the ``null`` branch FastAPI gives an optional path, query or header parameter: such
    a parameter is absent or a value, and the text ``null`` (what a client would send for a
    JSON null) is not one of its values."""
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                branches = [b for b in schema.get("anyOf", []) if b != {"type": "null"}]
                if "anyOf" in schema and len(branches) == 1:
                    del schema["anyOf"]
                    schema.update(branches[0])
    return document
