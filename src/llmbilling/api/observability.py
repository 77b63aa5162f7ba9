"""Structured JSON logs, Prometheus metrics, and the per-request middleware that feeds both.

Logs: one JSON object per line (structlog), stdlib loggers included, each request's lines
carrying its ``request_id``. What is logged: method, route template, path, status, duration,
token id, error codes and messages. Never a header, a body, a token or a secret value.

Metrics (one registry per app): ``llmbilling_decisions_total{mode,source}``,
``llmbilling_errors_total{code}``, ``llmbilling_http_request_duration_seconds{route,method}``.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmbilling.core.decision import BillingDecision

API_LOGGER = "llmbilling.api"
REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Unmatched paths share one label, so scanners cannot blow up the metric's cardinality.
UNMATCHED_ROUTE = "<unmatched>"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

log = structlog.get_logger()


def configure_logging(stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Send structlog and stdlib logging, as JSON lines, to ``stream`` (default stderr).

    structlog's own events (the API's, one per request) are rendered and written directly,
    without a trip through the stdlib's records and handlers, which cost as much again; the
    stdlib's (uvicorn, alembic, ours) pass the same processors on the root logger's handler.
    Replaces the root logger's handlers: call it once, where the process starts serving.
    """
    output = stream or sys.stderr
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    rendering: list[structlog.types.Processor] = [
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer(),
    ]
    structlog.configure(
        processors=[_name_api_logger, *shared, *rendering],
        logger_factory=structlog.WriteLoggerFactory(file=output),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(output)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _name_api_logger(
    _logger: object, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # structlog's events here are all the API's; the stdlib's carry their logger's name.
    event["logger"] = API_LOGGER
    return event


class Metrics:
    """The app's Prometheus metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._decisions = Counter(
            "llmbilling_decisions",
            "Decisions served by the API, by decided mode and source.",
            ["mode", "source"],
            registry=self.registry,
        )
        self._errors = Counter(
            "llmbilling_errors",
            "Errors by stable code: problem responses, and errors served beside a decision.",
            ["code"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "llmbilling_http_request_duration_seconds",
            "Request latency by route template and method.",
            ["route", "method"],
            registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )

    def count_decision(self, decision: BillingDecision) -> None:
        self._decisions.labels(decision.mode.value, decision.source.value).inc()
        if decision.error is not None:
            self.count_error(decision.error.code)

    def count_error(self, code: str) -> None:
        self._errors.labels(code).inc()

    def observe_request(self, route: str, method: str, seconds: float) -> None:
        self._latency.labels(route, method).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's ``X-Request-ID`` when it is short and plain, else a fresh UUID."""
    for name, value in headers:
        if name.lower() == b"x-request-id":
            text = value.decode("latin-1")
            if _SANE_REQUEST_ID.match(text):
                return text
    return str(uuid.uuid4())


class RequestObservability:
    """ASGI middleware: request id (echoed in ``X-Request-ID``), access log, latency, and the
    last-resort 500 problem for an unexpected exception (logged with its traceback)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, internal_error: dict[str, Any]) -> None:
        self.app = app
        self.metrics = metrics
        self.internal_error = internal_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope.get("headers", []))
        state: MutableMapping[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_request_id)
            except Exception:
                log.exception("unhandled_error")
                self.metrics.count_error(str(self.internal_error["code"]))
                if response_started:
                    raise
                response = JSONResponse(
                    self.internal_error, status_code=500, media_type="application/problem+json"
                )
                await response(scope, receive, send_with_request_id)
            finally:
                elapsed = time.perf_counter() - started
                route = _route_template(scope)
                self.metrics.observe_request(route, scope["method"], elapsed)
                log.info(
                    "request",
                    method=scope["method"],
                    route=route,
                    path=scope["path"],
                    status=status,
                    duration_ms=round(elapsed * 1000, 3),
                    token_id=state.get("token_id"),
                )


def _route_template(scope: Scope) -> str:
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    # Plain Starlette routes (the OpenAPI document, the docs pages) have fixed paths.
    return str(scope["path"]) if "endpoint" in scope else UNMATCHED_ROUTE
