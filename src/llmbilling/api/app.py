"""The admin HTTP service: ``create_app`` builds the FastAPI application.

The app holds one :class:`ServiceContext` (``app.state.context``), its own Prometheus
registry (``app.state.metrics``), the memory of recently verified tokens that keeps reads
working through a store outage (``app.state.recent_principals``), the what-if jobs of this
process (``app.state.whatif_jobs``). Each server's shutdown closes the context's reader of the
event loop it served on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from llmbilling.api.auth import RecentPrincipals
from llmbilling.api.console.routes import root_router as console_root_router
from llmbilling.api.console.routes import router as console_router
from llmbilling.api.console.session import ConsoleSessions
from llmbilling.api.console.whatif_pages import router as console_whatif_router
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
from llmbilling.api.routes import ROUTERS
from llmbilling.config.settings import Settings
from llmbilling.service.context import ServiceContext
from llmbilling.service.whatif_jobs import WhatIfJobs, WhatIfLimits

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

    whatif_jobs = WhatIfJobs(service_context, WhatIfLimits.from_settings(settings or Settings()))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
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
    for router in ROUTERS:
        app.include_router(router)
    # The web console (HTML pages under /console/) is included here.
    app.include_router(console_router)
    app.include_router(console_root_router)
    app.include_router(console_whatif_router)
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
            app.openapi_schema = declare_problems(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
