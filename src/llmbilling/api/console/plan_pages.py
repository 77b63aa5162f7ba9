"""The console's change confirmations: a write form proposes a plan, the confirmation page
shows that plan's impact, and its button applies that very plan (its id in the form).

``POST /console/orgs/{org_id}/default/plan`` (and, where the deployment guards dangerous
writes, ``POST /console/workspaces/{workspace_id}/override/plan``) proposes (nothing decided is
written) and redirects to ``GET /console/plans/{plan_id}``: counts,
danger classes with counts and samples, and the first moved workspaces before and after.
``POST /console/plans/{plan_id}/apply`` commits it, or answers 409 with the reason; a stale
plan's page shows what moved and a fresh preview of the same change to plan again. When the
deployment wants two people for dangerous plans, the page says so and offers another admin's
session an approve button (``POST /console/plans/{plan_id}/approve``).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from llmbilling.api.auth import Principal, Scope
from llmbilling.api.console import views
from llmbilling.api.console.guard import (
    ConsoleRoute,
    Context,
    PageNotFoundError,
    SameOrigin,
    SignedIn,
    WriteForbiddenError,
)
from llmbilling.api.console.rendering import render
from llmbilling.core.changes import AnyChange
from llmbilling.errors import ChangeConflictError, PlanNotFoundError, PlanStaleError
from llmbilling.service import admin, plans
from llmbilling.service.audit import AuditContext
from llmbilling.service.context import ServiceContext, parse_id
from llmbilling.service.plans import ChangeScope, Plan

# Moved workspaces a confirmation page lists (the plan keeps plans.DEFAULT_IMPACT_LIMIT).
SHOWN_IMPACTS = 20
SHOWN_SAMPLES = 5

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


def _who(request: Request, principal: Principal) -> AuditContext:
    request_id = getattr(request.state, "request_id", None) or str(uuid.uuid4())
    return AuditContext(actor=principal.actor, request_id=str(request_id))


def _page_id(text: str) -> UUID:
    try:
        return parse_id("id", text)
    except Exception:
        raise PageNotFoundError from None


def _may_write(principal: Principal) -> Any:
    """The access rule of a console change: foreign ids are not found, a weaker token may look
    but not change."""

    def authorize(scope: ChangeScope) -> None:
        if scope.org_id is None:
            if principal.scope is not Scope.ADMIN:
                raise PageNotFoundError
            return
        if not principal.can_read(scope.org_id):
            raise PageNotFoundError
        if not principal.can_write(scope.org_id):
            raise WriteForbiddenError

    return authorize


def _readable_plan(context: ServiceContext, principal: Principal, plan_id: str) -> Plan:
    try:
        plan = plans.get_plan(context, _page_id(plan_id))
    except PlanNotFoundError:
        raise PageNotFoundError from None
    org_id = plan.scope.org_id
    readable = principal.scope is Scope.ADMIN if org_id is None else principal.can_read(org_id)
    if not readable:
        raise PageNotFoundError
    return plan


def _propose(
    request: Request,
    context: ServiceContext,
    principal: Principal,
    change: AnyChange,
    reason: str,
) -> Response:
    # Checked now, so a reason the apply would refuse is refused before the confirmation;
    # the confirmation page carries it to the apply (the plan stores no reason).
    why = admin.parse_reason(reason)
    plan = plans.propose_plan(
        context, change, audit_context=_who(request, principal), authorize=_may_write(principal)
    )
    query = "" if why is None else f"?{urlencode({'reason': why})}"
    return RedirectResponse(f"/console/plans/{plan.id}{query}", status_code=303)


def _form_mode(mode: str, clear: str) -> str | None:
    """A plan form's mode: None when it clears (``clear`` set), else the mode it names."""
    return None if clear else admin.parse_override(mode).value


@router.post("/orgs/{org_id}/default/plan", dependencies=[SameOrigin])
def plan_org_default(
    request: Request,
    context: Context,
    principal: SignedIn,
    org_id: str,
    mode: Annotated[str, Form()] = "",
    clear: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    change = plans.org_default_change(_page_id(org_id), _form_mode(mode, clear))
    return _propose(request, context, principal, change, reason)


@router.post("/workspaces/{workspace_id}/override/plan", dependencies=[SameOrigin])
def plan_override(
    request: Request,
    context: Context,
    principal: SignedIn,
    workspace_id: str,
    mode: Annotated[str, Form()] = "",
    clear: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    expires_at: Annotated[str, Form()] = "",
) -> Response:
    change = plans.override_change(
        _page_id(workspace_id), _form_mode(mode, clear), expires_at.strip() or None
    )
    return _propose(request, context, principal, change, reason)


@router.get("/plans/{plan_id}")
def plan_page(context: Context, principal: SignedIn, plan_id: str, reason: str = "") -> Response:
    plan = _readable_plan(context, principal, plan_id)
    return _render_plan(context, principal, plan, reason=admin.parse_reason(reason) or "")


def _render_plan(
    context: ServiceContext,
    principal: Principal,
    plan: Plan,
    *,
    refusal: str | None = None,
    reason: str = "",
    status_code: int = 200,
) -> Response:
    org_id = plan.scope.org_id
    may_write = principal.scope is Scope.ADMIN if org_id is None else principal.can_write(org_id)
    org = None if org_id is None else admin.get_org(context, org_id)
    open_plan = plan.status in ("proposed", "approved")
    waiting = open_plan and plan.needs_approval
    return render(
        "console_plan.html",
        status_code=status_code,
        principal=principal,
        plan=plan,
        change=plan.change,
        preview=plan.preview,
        org=org,
        default_words=_default_words(context, org, plan.change),
        dangers={name: count for name, count in plan.preview["dangers"].items() if count},
        samples={
            name: names[:SHOWN_SAMPLES] for name, names in plan.preview["danger_samples"].items()
        },
        transitions=_moving_transitions(plan.preview),
        impacts=plan.preview["impacts"][:SHOWN_IMPACTS],
        more_impacts=len(plan.preview["impacts"]) > SHOWN_IMPACTS
        or not plan.preview["impacts_complete"],
        can_apply=open_plan and may_write and not waiting,
        waiting=waiting,
        can_approve=waiting and may_write and principal.actor != plan.proposed_by,
        refusal=refusal,
        reason=reason,
        reason_max=admin.MAX_REASON_LENGTH,
        back=_back_of(plan.change),
        apply_words=_apply_words(plan.change),
    )


def _default_words(
    context: ServiceContext, org: admin.OrgView | None, change: dict[str, Any]
) -> tuple[str, str] | None:
    """An org default change's default in words, now and after (None for other changes)."""
    if org is None or change["kind"] != "org_default":
        return None
    env_default = context.deployment.org_default
    return (
        views.org_default_words(org.billing_mode_default_raw, env_default),
        views.org_default_words(change["mode"], env_default),
    )


def _moving_transitions(preview: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The transition tables that move something (an unchanged row says nothing here)."""
    tables = []
    for key, title in (
        ("mode_transitions", "Mode"),
        ("source_transitions", "Decided by"),
        ("provisioning_transitions", "Provisioning"),
    ):
        moving = [row for row in preview[key] if row["from"] != row["to"]]
        if moving:
            tables.append((title, moving))
    return tables


def _back_of(change: dict[str, Any]) -> str:
    if change["kind"] == "org_default":
        return f"/console/orgs/{change['org_id']}/default"
    if change["kind"] == "workspace_override":
        return f"/console/workspaces/{change['workspace_id']}"
    return "/console/"


def _apply_words(change: dict[str, Any]) -> str:
    mode = change.get("mode")
    if change["kind"] == "org_default":
        return f"Yes, set {mode.strip().lower()}" if mode else "Yes, clear the org default"
    if change["kind"] == "workspace_override":
        return f"Yes, set {mode}" if mode else "Yes, clear the override"
    return "Yes, apply this plan"


@router.post("/plans/{plan_id}/approve", dependencies=[SameOrigin])
def approve_plan(request: Request, context: Context, principal: SignedIn, plan_id: str) -> Response:
    plan = _readable_plan(context, principal, plan_id)
    try:
        plans.approve_plan(
            context,
            plan.id,
            audit_context=_who(request, principal),
            authorize=_plan_access(principal),
        )
    except ChangeConflictError as error:
        return _render_plan(
            context, principal, plans.get_plan(context, plan.id), refusal=error.message,
            status_code=409,
        )  # fmt: skip
    return RedirectResponse(f"/console/plans/{plan.id}", status_code=303)


def _plan_access(principal: Principal) -> Any:
    def authorize(plan: Plan) -> None:
        _may_write(principal)(plan.scope)

    return authorize


@router.post("/plans/{plan_id}/apply", dependencies=[SameOrigin])
def apply_plan(
    request: Request,
    context: Context,
    principal: SignedIn,
    plan_id: str,
    reason: Annotated[str, Form()] = "",
    acknowledge: Annotated[list[str] | None, Form()] = None,
) -> Response:
    plan = _readable_plan(context, principal, plan_id)
    who = _who(request, principal)
    try:
        plans.apply_plan(
            context,
            plan.id,
            reason=reason,
            acknowledged=plans.parse_acknowledged(acknowledge or []),
            audit_context=who,
            authorize=_plan_access(principal),
        )
    except PlanStaleError as error:
        fresh = plans.preview_change(context, plans.parse_change(plan.change))
        return render(
            "console_plan_stale.html",
            status_code=409,
            principal=principal,
            plan=plan,
            reason=error.message,
            preview=fresh.to_document(),
            dangers=fresh.danger_counts,
            impacts=fresh.to_document()["impacts"][:SHOWN_IMPACTS],
            back=_back_of(plan.change),
            replan=_replan_form(plan.change),
            default_now=_default_now(context, plan),
        )
    except ChangeConflictError as error:
        return _render_plan(
            context, principal, plans.get_plan(context, plan.id), refusal=error.message,
            reason=reason, status_code=409,
        )  # fmt: skip
    changed = _changed_notice(plan.change)
    query = urlencode({"changed": changed, "request": who.request_id})
    return RedirectResponse(f"{_back_of(plan.change)}?{query}", status_code=303)


def _default_now(context: ServiceContext, plan: Plan) -> str | None:
    """An org default plan's org default as stored now, in words."""
    if plan.change["kind"] != "org_default" or plan.scope.org_id is None:
        return None
    org = admin.get_org(context, plan.scope.org_id)
    return views.org_default_words(org.billing_mode_default_raw, context.deployment.org_default)


def _changed_notice(change: dict[str, Any]) -> str:
    """The notice the page the apply returns to shows (its ``changed`` query value)."""
    if change["kind"] == "org_default":
        return "org_default_set" if change["mode"] is not None else "org_default_cleared"
    if change["kind"] == "workspace_override":
        return "override_set" if change["mode"] is not None else "override_cleared"
    return ""


def _replan_form(change: dict[str, Any]) -> dict[str, Any] | None:
    """The form that plans the same change again (the console plans org defaults and
    overrides)."""
    fields = {"mode": change["mode"]} if change["mode"] is not None else {"clear": "1"}
    if change["kind"] == "org_default":
        return {"action": f"/console/orgs/{change['org_id']}/default/plan", "fields": fields}
    if change["kind"] == "workspace_override":
        if change.get("expires_at"):
            fields["expires_at"] = change["expires_at"]
        action = f"/console/workspaces/{change['workspace_id']}/override/plan"
        return {"action": action, "fields": fields}
    return None
