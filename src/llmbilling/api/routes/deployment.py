"""``/v1/deployment``: what this deployment offers, for a UI deciding which modes to show.

Any token may read it (a viewer's included): nothing in it is tenant-specific. It is what the
original platform exposed so its UI could hide the "Platform" option: whether
``platform_managed`` is available here (the metering proxy is configured), the deployment
default, and the versions of the policy and registry every decision is made under.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from llmbilling.api.dependencies import Caller, Context
from llmbilling.api.problems import problem_responses
from llmbilling.core.modes import BillingMode, deployment_default

router = APIRouter(prefix="/v1", tags=["deployment"])


class DeploymentCapabilities(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    platform_managed_available: bool = Field(
        description="True when the metering proxy is configured: `platform_managed` can be"
        " provisioned here (a UI may hide the Platform option otherwise)."
    )
    deployment_default: BillingMode = Field(
        description="The mode decided when nothing else decides (spec §1)."
    )
    policy_version: str = Field(description="Content hash of the precedence policy in force.")
    registry_version: str | None = Field(
        description="Content hash of the provider registry in force; null when none loaded."
    )


@router.get(
    "/deployment",
    summary="What this deployment offers: platform_managed availability, default, versions",
    response_model=DeploymentCapabilities,
    responses=problem_responses(401, 500, 503),
)
async def deployment_capabilities(context: Context, _caller: Caller) -> DeploymentCapabilities:
    proxy_configured = context.deployment.proxy_configured
    return DeploymentCapabilities(
        platform_managed_available=proxy_configured,
        deployment_default=deployment_default(proxy_configured),
        policy_version=context.policy.version,
        registry_version=None if context.registry is None else context.registry.version,
    )
