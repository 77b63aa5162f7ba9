"""``llmbilling serve``: the admin HTTP service (JSON API, docs, metrics, console) on uvicorn.

``--demo`` first seeds a small fleet into the embedded SQLite store when it holds no
workspace, creates an admin token, and prints where to go and the token to use.
"""

from __future__ import annotations

import gc
from typing import Annotated

import typer
import uvicorn
from fastapi import FastAPI

from llmbilling.api.app import create_app
from llmbilling.api.limits import (
    HEADERS_TOO_LARGE_CODE,
    RequestHeadLimits,
    head_limited_protocol,
)
from llmbilling.api.observability import Metrics, configure_logging
from llmbilling.api.problems import problem_body
from llmbilling.cli.store_options import DatabaseUrlOption, settings_from_flags
from llmbilling.errors import InvalidInputError
from llmbilling.service import admin
from llmbilling.service.context import ServiceContext
from llmbilling.service.demo import seed_demo_fleet
from llmbilling.service.tokens import Scope, create_token

DEMO_WORKSPACES = 200
DEMO_SEED = 1


def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help=f"Seed {DEMO_WORKSPACES} demo workspaces into an empty SQLite store, create an"
            " admin token and print it with the console URL.",
        ),
    ] = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Serve the admin API until interrupted (logs: JSON lines on stderr)."""
    configure_logging()
    settings = settings_from_flags(database_url)
    if demo and not settings.is_sqlite:
        raise InvalidInputError(
            "--demo", "seeds the embedded SQLite store only; use a sqlite:/// database URL"
        )
    context = ServiceContext.from_settings(settings)
    try:
        if demo:
            token = _prepare_demo(context)
            print(f"console: http://{host}:{port}/console/", flush=True)
            print(f"admin token: {token}", flush=True)
        limits = RequestHeadLimits(settings.max_request_head_bytes, settings.max_request_headers)
        run_server(create_app(settings, context=context), host=host, port=port, head_limits=limits)
    finally:
        context.close()


def run_server(
    app: FastAPI, *, host: str, port: int, head_limits: RequestHeadLimits | None = None
) -> None:
    """Serve ``app`` on uvicorn until interrupted: one worker, the event loop left to uvicorn
    (uvloop when installed), httptools refusing a request head over ``head_limits`` (default:
    the settings' defaults) with a 431 problem, our JSON logging, no access log (the app logs
    every request itself). ``bench/decision_http.py`` serves through this too."""
    limits = head_limits or RequestHeadLimits()
    metrics: Metrics | None = getattr(app.state, "metrics", None)
    protocol = head_limited_protocol(
        limits,
        problem_body(431, HEADERS_TOO_LARGE_CODE, limits.refusal()),
        on_refused=None if metrics is None else lambda: metrics.count_error(HEADERS_TOO_LARGE_CODE),
    )
    # The app and everything imported to build it live as long as the process: frozen, they
    # are left out of the cyclic collector's full collections. Under load those came about
    # once a second and walked that whole heap, stalling every request for ~100 ms.
    gc.freeze()
    uvicorn.run(app, host=host, port=port, http=protocol, log_config=None, access_log=False)


def _prepare_demo(context: ServiceContext) -> str:
    """Seed the demo fleet unless the store already holds workspaces; a new admin token."""
    if not admin.list_workspaces(context, limit=1):
        seed_demo_fleet(context, workspace_count=DEMO_WORKSPACES, seed=DEMO_SEED)
    return create_token(context, scope=Scope.ADMIN, name="demo").token
