"""``/v1/plans``: preview a change's blast radius, plan it, approve it, apply it.

``POST /v1/plans/preview`` decides the change's scope before and after (nothing is stored);
``POST /v1/plans`` stores that preview as a plan bound to the versions it read; ``POST
/v1/plans/{id}/apply`` commits exactly that change, or answers 409 ``PLAN_STALE`` naming the
input families that moved since. A plan expires; under
``LLMBILLING_DANGEROUS_PLANS_NEED_APPROVAL`` a plan with danger classes waits for ``POST
/v1/plans/{id}/approve`` by another token. Access: a change of one org (or of one of its
workspaces) needs write access to that org; a fleet-wide change needs ``admin``. Plans are
read by whoever may read their org (fleet-wide ones: ``admin``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Header, Path, Query
from pydantic import BaseModel, ConfigDict, Field, JsonValue, StrictBool
from starlette.responses import JSONResponse, Response

from llmbilling.api.access import require
from llmbilling.api.auth import Principal, Scope
from llmbilling.api.dependencies import Audit, Caller, Context
from llmbilling.api.links import PLAN_LINKS, PLAN_LIST_LINKS, PLAN_PROPOSED_LINKS
from llmbilling.api.problems import problem_responses
from llmbilling.api.routes.whatif import compiled_proposal
from llmbilling.api.schemas import (
    COMPONENT_REF,
    ORG_DEFAULT_PATTERN,
    Rfc3339DateTime,
    reason_field,
)
from llmbilling.core.changes import AnyChange
from llmbilling.core.modes import MODE_VALUES
from llmbilling.core.policy import PolicyDocument, compile_policy
from llmbilling.core.registry import RegistryDocument, compile_registry
from llmbilling.errors import OrgNotFoundError, PlanNotFoundError, WorkspaceNotFoundError
from llmbilling.service import plans
from llmbilling.service.context import ServiceContext
from llmbilling.service.plans import ChangeScope, Plan

router = APIRouter(prefix="/v1/plans", tags=["plans"])
PlanId = Annotated[UUID, Path(description="Change plan id (UUID).")]
ENV_NAME_PATTERN = r"^[A-Z_][A-Z0-9_]*$"


_DANGER_NAME = f"(?:{'|'.join(plans.DANGER_VALUES)})"
# Danger class names, comma-separated; spaces and empty items are allowed (and ignored).
ACKNOWLEDGE_DANGERS_PATTERN = rf"^ *(?:{_DANGER_NAME} *)?(?:, *(?:{_DANGER_NAME} *)?)*$"
AcknowledgeDangersHeader = Annotated[
    str | None,
    Header(
        alias="Acknowledge-Dangers",
        # Documented, checked by the service (whose 400 names the unknown class and the
        # classes there are).
        json_schema_extra={"pattern": ACKNOWLEDGE_DANGERS_PATTERN},
        description="Danger classes this write knowingly creates, comma-separated (e.g."
        " `to_disabled, byok_to_platform`). Under LLMBILLING_GUARD_DANGEROUS_WRITES a write"
        " creating a class it does not name is refused (409 DANGER_NOT_ACKNOWLEDGED).",
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- bodies ------------------------------------------------------------------------------------


class OverrideChangeBody(_Model):
    kind: Literal["workspace_override"]
    workspace_id: UUID
    mode: str = Field(
        description="One of the three modes, exactly.",
        json_schema_extra={"enum": list(MODE_VALUES)},
    )
    expires_at: Rfc3339DateTime | None = Field(
        default=None, description="When the override stops deciding; null: never."
    )


class OverrideClearChangeBody(_Model):
    # Its own kind, as DELETE is its own method on the resource: a clear has no expiry.
    kind: Literal["workspace_override_clear"]
    workspace_id: UUID


class OrgDefaultChangeBody(_Model):
    kind: Literal["org_default"]
    org_id: UUID
    mode: str | None = Field(
        description="Text that normalizes to a mode, stored as given; null clears the default.",
        json_schema_extra={"pattern": ORG_DEFAULT_PATTERN},
    )


class SecretChangeBody(_Model):
    kind: Literal["secret"]
    scope: Literal["org", "workspace"]
    owner_id: UUID = Field(description="The org's or the workspace's id.")
    name: str = Field(
        description="The secret's name (not MOLECULE_MODEL or MODEL: their value decides).",
        json_schema_extra={
            "pattern": ENV_NAME_PATTERN,
            "not": {"enum": list[JsonValue](sorted(plans.MODEL_SECRET_NAMES))},
        },
    )
    present: StrictBool = Field(
        description="true: the secret is set (its value is given at apply); false: deleted."
    )


class DeploymentChangeBody(_Model):
    kind: Literal["deployment"]
    proxy_configured: StrictBool | None = Field(
        default=None, description="Whether the deployment will have a proxy; null: as today."
    )
    org_default: str | None = Field(
        default=None,
        description="The env org default (MOLECULE_LLM_BILLING_MODE) it will have; null:"
        " unset. Left out: as today.",
        json_schema_extra={"pattern": ORG_DEFAULT_PATTERN},
    )


def _proposed_document(model: type[BaseModel]) -> dict[str, JsonValue]:
    # The schema of the core model that validates the document (a components entry).
    return {"anyOf": [{"$ref": COMPONENT_REF.format(model=model.__name__)}, {"type": "null"}]}


class ConfigurationChangeBody(_Model):
    # Naming neither previews no change, as a what-if naming neither compares today with itself.
    kind: Literal["configuration"]
    policy: dict[str, Any] | None = Field(
        default=None,
        description="A proposed precedence policy document; null: today's.",
        json_schema_extra=_proposed_document(PolicyDocument),
    )
    registry: dict[str, Any] | None = Field(
        default=None,
        description="A proposed provider registry document; null: today's.",
        json_schema_extra=_proposed_document(RegistryDocument),
    )


ChangeBody = Annotated[
    OverrideChangeBody
    | OverrideClearChangeBody
    | OrgDefaultChangeBody
    | SecretChangeBody
    | DeploymentChangeBody
    | ConfigurationChangeBody,
    Field(discriminator="kind"),
]


class PlanRequest(_Model):
    change: ChangeBody
    org_id: UUID | None = Field(
        default=None,
        description="Only this org's workspaces, for a fleet-wide change (deployment, policy,"
        " registry); a write change's scope is its own.",
    )
    impact_limit: int = Field(
        default=plans.DEFAULT_IMPACT_LIMIT,
        ge=0,
        le=plans.MAX_IMPACT_LIMIT,
        description="How many moved workspaces to list (counts always cover every one).",
    )


class ApplyRequest(_Model):
    value: str | None = Field(
        default=None,
        description="The secret's value, for a plan that sets a secret (never stored in the"
        " plan, never shown).",
    )
    reason: str | None = reason_field()


# --- answers -----------------------------------------------------------------------------------


class PlanScope(_Model):
    kind: Literal["workspace", "org", "fleet"]
    org_id: str | None
    workspace_id: str | None


class ChangePreviewDocument(_Model):
    change: dict[str, Any]
    scope: PlanScope
    total: int = Field(description="Workspaces of the scope (all of them).")
    changed: int = Field(description="Workspaces whose mode or source moves.")
    dangerous: bool
    dangers: dict[str, int]
    danger_samples: dict[str, list[str]]
    mode_transitions: list[dict[str, Any]]
    source_transitions: list[dict[str, Any]]
    provisioning_transitions: list[dict[str, Any]]
    impacts: list[dict[str, Any]] = Field(
        description="Moved workspaces (decision or provisioning verdict), before and after,"
        " in id order, at most impact_limit."
    )
    impacts_complete: bool
    current: dict[str, str | None]
    proposed: dict[str, str | None]


class PlanDocument(_Model):
    id: str
    status: Literal["proposed", "approved", "applied", "expired"]
    change: dict[str, Any]
    scope: PlanScope
    dangerous: bool
    needs_approval: bool
    preview: dict[str, Any]
    observed: dict[str, str] = Field(description="A digest per input family the plan read.")
    proposed_by: str
    created_at: str
    expires_at: str
    approved_by: str | None
    approved_at: str | None
    applied_by: str | None
    applied_at: str | None


class PlanList(_Model):
    plans: list[PlanDocument]


# --- routes ------------------------------------------------------------------------------------


@router.post(
    "/preview",
    summary="Preview a change: every workspace of its scope decided before and after",
    response_model=ChangePreviewDocument,
    responses=problem_responses(400, 401, 403, 404, 422, 500, 503),
)
def preview_change(body: PlanRequest, context: Context, caller: Caller) -> Response:
    preview = plans.preview_change(
        context,
        _change(context, body.change),
        org_id=body.org_id,
        impact_limit=body.impact_limit,
        authorize=_may_change(caller, body.change),
    )
    return JSONResponse(preview.to_document())


@router.post(
    "",
    summary="Plan a change: its preview, bound to the versions of what it read",
    status_code=201,
    response_model=PlanDocument,
    responses={
        201: {"links": PLAN_PROPOSED_LINKS},
        **problem_responses(400, 401, 403, 404, 422, 500, 503),
    },
)
def propose_plan(body: PlanRequest, context: Context, caller: Caller, audit: Audit) -> Response:
    plan = plans.propose_plan(
        context,
        _change(context, body.change),
        org_id=body.org_id,
        impact_limit=body.impact_limit,
        audit_context=audit,
        authorize=_may_change(caller, body.change),
    )
    return JSONResponse(
        plan.to_dict(), status_code=201, headers={"Location": f"/v1/plans/{plan.id}"}
    )


@router.get(
    "",
    summary="The plans this token may read, newest first",
    response_model=PlanList,
    responses={200: {"links": PLAN_LIST_LINKS}, **problem_responses(400, 401, 500, 503)},
)
def list_plans(
    context: Context,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=500, description="At most this many plans.")] = 50,
) -> Response:
    # Every scope but admin names exactly one org (tokens.py); admin reads every plan.
    org_ids = None if caller.org_id is None else [caller.org_id]
    found = plans.list_plans(context, org_ids=org_ids, limit=limit)
    return JSONResponse({"plans": [plan.to_dict() for plan in found]})


@router.get(
    "/{plan_id:uuid}",
    summary="A plan: its change, preview, observed versions, and who did what",
    response_model=PlanDocument,
    responses={200: {"links": PLAN_LINKS}, **problem_responses(400, 401, 404, 500, 503)},
)
def get_plan(plan_id: PlanId, context: Context, caller: Caller) -> Response:
    plan = plans.get_plan(context, plan_id)
    _readable(caller, plan)
    return JSONResponse(plan.to_dict())


@router.post(
    "/{plan_id:uuid}/approve",
    summary="Approve a plan (a different token than its proposer's)",
    response_model=PlanDocument,
    responses={200: {"links": PLAN_LINKS}, **problem_responses(400, 401, 403, 404, 409, 500, 503)},
)
def approve_plan(plan_id: PlanId, context: Context, caller: Caller, audit: Audit) -> Response:
    plan = plans.approve_plan(
        context, plan_id, audit_context=audit, authorize=_may_act(caller, "approving this plan")
    )
    return JSONResponse(plan.to_dict())


@router.post(
    "/{plan_id:uuid}/apply",
    summary="Apply a plan: exactly its change, or 409 naming what moved since its preview",
    response_model=PlanDocument,
    responses={
        200: {"links": PLAN_LINKS},
        **problem_responses(400, 401, 403, 404, 409, 422, 500, 503),
    },
)
def apply_plan(
    plan_id: PlanId,
    context: Context,
    caller: Caller,
    audit: Audit,
    body: Annotated[ApplyRequest | None, Body()] = None,
    acknowledge_dangers: AcknowledgeDangersHeader = None,
) -> Response:
    plan = plans.apply_plan(
        context,
        plan_id,
        secret_value=None if body is None else body.value,
        reason=None if body is None else body.reason,
        acknowledged=plans.parse_acknowledged(acknowledge_dangers),
        audit_context=audit,
        authorize=_may_act(caller, "applying this plan"),
    )
    return JSONResponse(plan.to_dict())


# --- helpers -----------------------------------------------------------------------------------


def _change(context: ServiceContext, body: Any) -> AnyChange:
    if isinstance(body, OverrideChangeBody):
        return plans.override_change(body.workspace_id, body.mode, body.expires_at)
    if isinstance(body, OverrideClearChangeBody):
        return plans.override_change(body.workspace_id, None)
    if isinstance(body, OrgDefaultChangeBody):
        return plans.org_default_change(body.org_id, body.mode)
    if isinstance(body, SecretChangeBody):
        return plans.secret_change(body.scope, body.owner_id, body.name, present=body.present)
    if isinstance(body, DeploymentChangeBody):
        if "org_default" in body.model_fields_set:
            return plans.deployment_change(
                proxy_configured=body.proxy_configured, org_default=body.org_default
            )
        return plans.deployment_change(proxy_configured=body.proxy_configured)
    assert isinstance(body, ConfigurationChangeBody)
    policy = (
        None if body.policy is None else compiled_proposal("policy", compile_policy, body.policy)
    )
    registry = (
        None
        if body.registry is None
        else compiled_proposal("registry", compile_registry, body.registry)
    )
    return plans.configuration_change(context, policy, registry)


def _may_change(caller: Principal, body: Any) -> Any:
    def authorize(scope: ChangeScope) -> None:
        if scope.org_id is None:
            require(caller.scope is Scope.ADMIN, "a change of the whole fleet")
            return
        if not caller.can_read(scope.org_id):
            # Ids outside the caller's org are not confirmed: not found, like a missing one.
            if scope.workspace_id is not None:
                raise WorkspaceNotFoundError(scope.workspace_id)
            raise OrgNotFoundError(scope.org_id)
        require(caller.can_write(scope.org_id), "changing this org")
        if isinstance(body, DeploymentChangeBody | ConfigurationChangeBody):
            require(caller.scope is Scope.ADMIN, "a change of the deployment")

    return authorize


def _readable(caller: Principal, plan: Plan) -> None:
    org_id = plan.scope.org_id
    readable = caller.scope is Scope.ADMIN if org_id is None else caller.can_read(org_id)
    if not readable:
        raise PlanNotFoundError(plan.id)


def _may_act(caller: Principal, action: str) -> Any:
    def authorize(plan: Plan) -> None:
        _readable(caller, plan)
        org_id = plan.scope.org_id
        allowed = caller.scope is Scope.ADMIN if org_id is None else caller.can_write(org_id)
        require(allowed, action)

    return authorize
