"""Liveness, readiness and metrics: no token needed, nothing tenant-specific inside."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from llmbilling.api.dependencies import AppMetrics, Context
from llmbilling.api.problems import problem_responses
from llmbilling.api.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up", response_model=Health)
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Ready: the store answers reads and can take writes",
    response_model=Health,
    responses=problem_responses(503),
)
def readyz(context: Context) -> Health:
    # A store that reads but cannot write (read-only file or server, full disk) is not ready:
    # store/health.py proves a write can succeed.
    context.check_store()
    return Health(status="ready")


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(app_metrics: AppMetrics) -> Response:
    return Response(app_metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
