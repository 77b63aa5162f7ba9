"""``llmbilling serve``: the admin HTTP service (JSON API, docs, metrics, console) on uvicorn.

``--demo`` first seeds a small fleet into the embedded SQLite store when it holds no
workspace, and prints where to go, the admin token to log in with, one curl line and whether
a metering proxy is configured. The token is minted once and kept in a 0600 file beside the
database (``<database>.demo-token``); later starts reuse it, and mint (revoking the old demo
tokens) only when that file is gone or its token was revoked.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

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
from llmbilling.service.tokens import (
    ActiveToken,
    Scope,
    create_token,
    list_tokens,
    revoke_token,
    verify_token,
)

DEMO_WORKSPACES = 200
# How long a stopping server waits for open responses (an OFREP event stream lives 15 s).
GRACEFUL_SHUTDOWN_SECONDS = 5
DEMO_SEED = 1
DEMO_TOKEN_NAME = "demo"
DEMO_TOKEN_SUFFIX = ".demo-token"


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
    context = ServiceContext.from_settings(settings, create_database=demo)
    try:
        if demo:
            token_file = demo_token_file(context.store.url.database or "")
            token = _prepare_demo(context, token_file)
            _print_demo_guide(context, f"http://{host}:{port}", token, token_file)
        limits = RequestHeadLimits(settings.max_request_head_bytes, settings.max_request_headers)
        # Other replicas' writes reach this one (and, on PostgreSQL, the decision inputs are
        # served from memory while it is connected); closed with the context.
        context.change_feed.start()
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
    # An open OFREP event stream would hold a shutdown for its whole lifetime; its providers
    # reconnect to another replica anyway.
    uvicorn.run(
        app,
        host=host,
        port=port,
        http=protocol,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


def demo_token_file(database: str) -> Path:
    """Where the demo admin token is kept: beside the SQLite file, ``<file>.demo-token``."""
    path = Path(database).expanduser()
    return path.with_name(path.name + DEMO_TOKEN_SUFFIX)


def _prepare_demo(context: ServiceContext, token_file: Path) -> str:
    """Seed the demo fleet unless the store already holds workspaces; the demo admin token:
    the kept one while it is active, else a new one (the old demo tokens revoked)."""
    if not admin.list_workspaces(context, limit=1):
        seed_demo_fleet(context, workspace_count=DEMO_WORKSPACES, seed=DEMO_SEED)
    kept = _read_kept_token(token_file)
    if kept is not None:
        standing = verify_token(context, kept)
        if isinstance(standing, ActiveToken) and standing.scope is Scope.ADMIN:
            return kept
    # Its plaintext is lost (only the hash is stored): no other demo token stays usable.
    for info in list_tokens(context):
        if info.name == DEMO_TOKEN_NAME and info.scope is Scope.ADMIN and info.revoked_at is None:
            revoke_token(context, info.id)
    token = create_token(context, scope=Scope.ADMIN, name=DEMO_TOKEN_NAME).token
    _keep_token(token_file, token)
    return token


def _read_kept_token(token_file: Path) -> str | None:
    try:
        return token_file.read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def _keep_token(token_file: Path, token: str) -> None:
    # Created 0600 from the start (never readable by others, not even briefly), then renamed.
    partial = token_file.with_name(token_file.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    os.replace(partial, token_file)


def _print_demo_guide(context: ServiceContext, base: str, token: str, token_file: Path) -> None:
    """What to do next: the console and the token to log in with, one curl, the proxy."""
    sample = admin.list_workspaces(context, limit=1)
    print(f"console: {base}/console/", flush=True)
    print(f"admin token: {token}", flush=True)
    print(f"  log in to the console with it; kept in {token_file} for the next start", flush=True)
    if sample:
        print(
            f"try: curl -H 'Authorization: Bearer {token}'"
            f" {base}/v1/workspaces/{sample[0].workspace.id}/llm-billing-mode",
            flush=True,
        )
    proxy = context.deployment.proxy
    if proxy.configured:
        print(f"metering proxy: configured at {_without_credentials(proxy.base_url)}", flush=True)
    else:
        print(
            "metering proxy: not configured — platform_managed workspaces will fail provisioning"
            " with MISSING_PLATFORM_PROXY; set MOLECULE_LLM_BASE_URL and MOLECULE_LLM_USAGE_TOKEN",
            flush=True,
        )


def _without_credentials(url: str | None) -> str:
    """Scheme, host, port and path only: user info and query may carry credentials."""
    try:
        parts = urlsplit(url or "")
    except ValueError:
        return "<unparseable URL>"
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
