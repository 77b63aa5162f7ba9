"""The JSON API's routers, one module per resource."""

from __future__ import annotations

from fastapi import APIRouter

from llmbilling.api.routes import (
    audit_log,
    deployment,
    health,
    ofrep,
    org_defaults,
    org_workspaces,
    orgs,
    plans,
    provision_env,
    whatif,
    workspace_billing,
)

# Our own /v1 API, held to our OpenAPI document; OFREP's routes answer in OFREP's shapes.
ROUTERS: tuple[APIRouter, ...] = (
    workspace_billing.router,
    orgs.router,
    org_defaults.router,
    org_workspaces.router,
    provision_env.router,
    audit_log.router,
    whatif.router,
    health.router,
    deployment.router,
    plans.router,
)
OFREP_ROUTER = ofrep.router
