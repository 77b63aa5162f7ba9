"""The web console: server-rendered pages over the service layer, mounted at ``/console``.

Every page but the login form needs a signed-in token (see ``session``) and shows only what
that token's :class:`Principal` may read; a foreign org or workspace is "not found", exactly
as in the JSON API. Writes need ``can_write``, come from our own origin, and are audited with
the token as the actor and the request's id.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from llmbilling.api.auth import Principal
from llmbilling.api.console import views
from llmbilling.api.console.guard import (
    ConsoleRoute,
    Context,
    PageNotFoundError,
    SameOrigin,
    SignedIn,
    WriteForbiddenError,
    current_principal,
)
from llmbilling.api.console.rendering import STATIC_FILES, render, static_file
from llmbilling.api.console.session import (
    clear_session_cookie,
    client_address,
    console_sessions_of,
    safe_next,
    session_secret,
    set_session_cookie,
)
from llmbilling.api.etags import IfMatch, decision_etag
from llmbilling.core.modes import MODE_VALUES, BillingMode, DecisionSource
from llmbilling.errors import InvalidInputError, StoreUnavailableError
from llmbilling.service import admin, audit, console, console_sessions, orgs, plans
from llmbilling.service.audit import AuditContext
from llmbilling.service.context import ServiceContext
from llmbilling.service.resolve import DecisionVersion, read_decision

FLEET_PAGE_SIZE = 50
AUDIT_PAGE_SIZE = 50
WORKSPACE_AUDIT_SIZE = 20
ORG_PAGE_SIZE = 50
SEARCH_LIMIT = 20
SOURCE_VALUES: tuple[str, ...] = tuple(source.value for source in DecisionSource)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
# Outside /console: a browser that opens the bare host lands on the console, and finds its
# icon where browsers look without being told. The JSON API has no route at either path.
root_router = APIRouter(include_in_schema=False)


@root_router.get("/")
def root() -> Response:
    return RedirectResponse("/console/", status_code=307)


@root_router.get("/favicon.ico")
def favicon() -> Response:
    return RedirectResponse("/console/static/favicon.svg", status_code=308)


def _audit_context(request: Request, principal: Principal) -> AuditContext:
    # The app's middleware gives every request an id (echoed in X-Request-ID); the fallback
    # only serves the router mounted on a bare app.
    request_id = getattr(request.state, "request_id", None) or str(uuid.uuid4())
    return AuditContext(actor=principal.actor, request_id=str(request_id))


def _parse_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise PageNotFoundError from None


def _readable_workspace(
    context: ServiceContext, principal: Principal, workspace_id: str
) -> admin.WorkspaceView:
    workspace = admin.get_workspace(context, _parse_id(workspace_id))
    if not principal.can_read(workspace.org_id):
        raise PageNotFoundError
    return workspace


def _writable_workspace(
    context: ServiceContext, principal: Principal, workspace_id: str
) -> admin.WorkspaceView:
    workspace = _readable_workspace(context, principal, workspace_id)
    if not principal.can_write(workspace.org_id):
        raise WriteForbiddenError
    return workspace


def _choice(field: str, value: str, allowed: tuple[str, ...]) -> str | None:
    """An optional filter value: blank means "any"; anything else must be allowed."""
    if not value:
        return None
    if value not in allowed:
        raise InvalidInputError(field, f"{value!r} is not one of {', '.join(allowed)}", allowed)
    return value


# --- signing in and out ----------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request, context: Context, next: str = "") -> Response:
    if current_principal(request, context) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(next)


@router.post("/login", dependencies=[SameOrigin])
def login(
    request: Request,
    context: Context,
    token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    sessions = console_sessions_of(request)
    client = client_address(request)
    now = sessions.now()
    wait = sessions.throttle.retry_after(client, now)
    if wait is not None:
        # Refused before the token is looked at: a right guess now is refused like a wrong one.
        response = _login_page(next, status_code=429, retry_after=wait)
        response.headers["Retry-After"] = str(wait)
        return response
    presented = token.strip()
    started = (
        console_sessions.start_session(context, presented, policy=sessions.policy, now=now)
        if presented
        else None
    )
    if started is None:
        sessions.throttle.failed(client, now)
        # The token is never echoed back, not even into the form field.
        return _login_page(next, status_code=401, failed=True)
    sessions.throttle.succeeded(client)
    previous = session_secret(request)
    if previous is not None:
        console_sessions.end_session(context, previous, now=now)
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(request, response, started, sessions.policy)
    return response


@router.post("/logout", dependencies=[SameOrigin])
def logout(request: Request, context: Context) -> Response:
    secret = session_secret(request)
    if secret is not None:
        # Ended in the store, so a copy of the cookie stops working too.
        console_sessions.end_session(context, secret, now=console_sessions_of(request).now())
    response = RedirectResponse("/console/login", status_code=303)
    clear_session_cookie(request, response)
    return response


def _login_page(
    next: str, *, status_code: int = 200, failed: bool = False, retry_after: int | None = None
) -> Response:
    return render(
        "console_login.html",
        status_code=status_code,
        principal=None,
        next=safe_next(next),
        failed=failed,
        retry_after=retry_after,
    )


# --- pages -----------------------------------------------------------------------------------


@router.get("/")
def home(context: Context, principal: SignedIn, after: str = "") -> Response:
    cursor = _page_cursor(after) if after else None
    page = orgs.list_orgs(context, only=principal.org_id, after=cursor, limit=ORG_PAGE_SIZE)
    next_cursor = None if page.next_after is None else str(page.next_after)
    return render(
        "console_orgs.html",
        principal=principal,
        orgs=[org for org in page.orgs if principal.can_read(org.id)],
        org_default_words=views.org_default_words,
        deployment_default=context.deployment.org_default,
        next_cursor=next_cursor,
        first_page=not after,
    )


def _page_cursor(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise InvalidInputError("after", "is not a page cursor") from None


@router.get("/orgs/{org_id}")
def fleet(
    context: Context,
    principal: SignedIn,
    org_id: str,
    mode: str = "",
    source: str = "",
    provisioning: str = "",
    after: str = "",
) -> Response:
    parsed = _parse_id(org_id)
    if not principal.can_read(parsed):
        raise PageNotFoundError
    org = admin.get_org(context, parsed)
    filters = {
        "mode": _choice("mode", mode, MODE_VALUES) or "",
        "source": _choice("source", source, SOURCE_VALUES) or "",
        "provisioning": _choice("provisioning", provisioning, admin.PROVISIONING_FILTER_VALUES)
        or "",
    }
    # One beyond the page tells whether there is a next one.
    found = admin.list_workspaces(
        context,
        org_id=parsed,
        mode=filters["mode"] or None,
        source=filters["source"] or None,
        provisioning=filters["provisioning"] or None,
        after=_parse_id(after) if after else None,
        limit=FLEET_PAGE_SIZE + 1,
    )
    page = found[:FLEET_PAGE_SIZE]
    provisioned = console.last_provisions(context, [item.workspace.id for item in page])
    next_url = (
        f"/console/orgs/{parsed}?{urlencode({**filters, 'after': str(page[-1].workspace.id)})}"
        if len(found) > FLEET_PAGE_SIZE
        else None
    )
    return render(
        "console_fleet.html",
        principal=principal,
        org=org,
        org_default=views.org_default_words(
            org.billing_mode_default_raw, context.deployment.org_default
        ),
        rows=[
            (item, views.flip_marker(item.decision, provisioned.get(item.workspace.id)))
            for item in page
        ],
        modes=MODE_VALUES,
        sources=SOURCE_VALUES,
        provisioning_filters=admin.PROVISIONING_FILTER_VALUES,
        filters=filters,
        filtered=any(filters.values()),
        first_page=not after,
        first_url=f"/console/orgs/{parsed}?{urlencode(filters)}",
        next_url=next_url,
        can_edit_default=principal.can_write(parsed),
    )


@router.get("/search")
def search(context: Context, principal: SignedIn, q: str = "") -> Response:
    text = q.strip()[:200]
    found = orgs.search(context, text, only=principal.org_id, limit=SEARCH_LIMIT)
    if found.exact is not None:
        kind = "orgs" if found.exact.kind == "org" else "workspaces"
        return RedirectResponse(f"/console/{kind}/{found.exact.id}", status_code=303)
    return render(
        "console_search.html",
        principal=principal,
        search_text=text,
        is_id=_is_uuid(text),
        orgs=found.orgs,
        workspaces=found.workspaces,
        limit=SEARCH_LIMIT,
    )


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True


# --- the org default: set, change, clear, each through a confirmation bound to the version ---


def _readable_org(context: ServiceContext, principal: Principal, org_id: str) -> admin.OrgView:
    parsed = _parse_id(org_id)
    if not principal.can_read(parsed):
        raise PageNotFoundError
    return admin.get_org(context, parsed)


def _default_words(context: ServiceContext, raw: str | None) -> str:
    return views.org_default_words(raw, context.deployment.org_default)


@router.get("/orgs/{org_id}/default")
def org_default_page(
    context: Context,
    principal: SignedIn,
    org_id: str,
    changed: str = "",
    request_id: Annotated[str, Query(alias="request")] = "",
) -> Response:
    org = _readable_org(context, principal, org_id)
    notice = {
        "org_default_set": "Org default set.",
        "org_default_cleared": "Org default cleared.",
        "org_default_unchanged": "The org default already was that: nothing changed.",
    }.get(changed)
    return render(
        "console_org_default.html",
        principal=principal,
        org=org,
        org_default=_default_words(context, org.billing_mode_default_raw),
        can_write=principal.can_write(org.id),
        modes=MODE_VALUES,
        reason_max=admin.MAX_REASON_LENGTH,
        notice=notice,
        notice_request=request_id if notice and _REQUEST_ID.match(request_id) else None,
    )


@router.get("/workspaces/{workspace_id}")
def workspace_page(
    context: Context,
    principal: SignedIn,
    workspace_id: str,
    changed: str = "",
    request_id: Annotated[str, Query(alias="request")] = "",
) -> Response:
    workspace = _readable_workspace(context, principal, workspace_id)
    stored = read_decision(context, workspace.id)
    decision = stored.decision
    inputs = None if stored.state is None else console.workspace_inputs(context, stored.state)
    org = admin.get_org(context, workspace.org_id)
    last = console.last_provisions(context, [workspace.id]).get(workspace.id)
    trail = audit.list_entries(context, workspace_id=workspace.id, limit=WORKSPACE_AUDIT_SIZE)
    notice = {
        "override_set": "Override set.",
        "override_cleared": "Override cleared: the workspace inherits again.",
    }.get(changed)
    return render(
        "console_workspace.html",
        principal=principal,
        workspace=workspace,
        org=org,
        decision=decision,
        inputs=inputs,
        override_expires_at=None if stored.state is None else stored.state.override_expires_at,
        ladder=views.ladder(decision),
        source_labels=views.SOURCE_LABELS,
        last_provision=last,
        flip=views.flip_marker(decision, last),
        entries=trail,
        changes_words=views.changes_words,
        can_write=principal.can_write(workspace.org_id),
        modes=MODE_VALUES,
        notice=notice,
        notice_request=request_id if notice and _REQUEST_ID.match(request_id) else None,
    )


@router.get("/workspaces/{workspace_id}/override/set")
def confirm_set_override(
    context: Context, principal: SignedIn, workspace_id: str, mode: str = ""
) -> Response:
    workspace = _writable_workspace(context, principal, workspace_id)
    new_mode = admin.parse_override(mode)
    return _confirm_page(context, principal, workspace, new_mode)


@router.post("/workspaces/{workspace_id}/override/set", dependencies=[SameOrigin])
def set_override(
    request: Request,
    context: Context,
    principal: SignedIn,
    workspace_id: str,
    mode: Annotated[str, Form()],
    version: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "",
    expires_at: Annotated[str, Form()] = "",
) -> Response:
    workspace = _writable_workspace(context, principal, workspace_id)
    who = _audit_context(request, principal)
    expiry = expires_at.strip() or None
    admin.set_override(
        context,
        workspace.id,
        mode,
        audit_context=who,
        expected_versions=(_seen_version(version),),
        reason=reason or None,
        expires_at=expiry,
        under_lock=plans.guard_override(context, workspace.id, mode, expiry, None),
    )
    return _back_to_workspace(workspace.id, "override_set", who.request_id)


@router.get("/workspaces/{workspace_id}/override/clear")
def confirm_clear_override(context: Context, principal: SignedIn, workspace_id: str) -> Response:
    workspace = _writable_workspace(context, principal, workspace_id)
    return _confirm_page(context, principal, workspace, None)


@router.post("/workspaces/{workspace_id}/override/clear", dependencies=[SameOrigin])
def clear_override(
    request: Request,
    context: Context,
    principal: SignedIn,
    workspace_id: str,
    version: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "",
) -> Response:
    workspace = _writable_workspace(context, principal, workspace_id)
    who = _audit_context(request, principal)
    admin.set_override(
        context,
        workspace.id,
        None,
        audit_context=who,
        expected_versions=(_seen_version(version),),
        reason=reason or None,
        under_lock=plans.guard_override(context, workspace.id, None, None, None),
    )
    return _back_to_workspace(workspace.id, "override_cleared", who.request_id)


def _confirm_page(
    context: ServiceContext,
    principal: Principal,
    workspace: admin.WorkspaceView,
    new_mode: BillingMode | None,
) -> Response:
    current = read_decision(context, workspace.id)
    version = current.version
    if version is None:
        # The decision could not be read, so there is nothing to confirm a change against.
        raise StoreUnavailableError("the workspace's decision could not be read")
    return render(
        "console_confirm.html",
        principal=principal,
        workspace=workspace,
        org=admin.get_org(context, workspace.org_id),
        new_mode=None if new_mode is None else new_mode.value,
        current=current.decision,
        # The write happens only if the decision is still the one this page showed.
        version=decision_etag(version),
        preview=console.decision_with_override(context, workspace.id, new_mode),
        source_labels=views.SOURCE_LABELS,
        # A guarding deployment refuses a dangerous direct write: the change goes through a
        # plan, whose page shows its danger classes and takes the acknowledgement or approval.
        through_plan=plans.guards_dangerous_writes(context),
    )


def _seen_version(tag: str) -> DecisionVersion:
    versions = IfMatch((tag.strip(),)).decision_versions()
    if len(versions) != 1:
        raise InvalidInputError("version", "is not a version this console issued")
    return versions[0]


def _back_to_workspace(workspace_id: UUID, changed: str, request_id: str) -> Response:
    query = urlencode({"changed": changed, "request": request_id})
    return RedirectResponse(f"/console/workspaces/{workspace_id}?{query}", status_code=303)


@router.get("/audit")
def audit_trail(
    context: Context,
    principal: SignedIn,
    org: str = "",
    workspace: str = "",
    before: str = "",
) -> Response:
    org_id = _parse_id(org) if org else None
    workspace_id = _parse_id(workspace) if workspace else None
    if org_id is not None and not principal.can_read(org_id):
        raise PageNotFoundError
    if workspace_id is not None:
        _readable_workspace(context, principal, str(workspace_id))
    if before and not before.isdigit():
        raise InvalidInputError("before", "is not a page cursor")
    found = audit.list_entries(
        context,
        # Every token but an admin's sees its own org's entries only, whatever the filters.
        org_id=org_id if principal.org_id is None else principal.org_id,
        workspace_id=workspace_id,
        before_id=int(before) if before else None,
        limit=AUDIT_PAGE_SIZE + 1,
    )
    page = found[:AUDIT_PAGE_SIZE]
    filters = {
        "org": "" if org_id is None else str(org_id),
        "workspace": "" if workspace_id is None else str(workspace_id),
    }
    next_url = (
        f"/console/audit?{urlencode({**filters, 'before': str(page[-1].id)})}"
        if len(found) > AUDIT_PAGE_SIZE
        else None
    )
    return render(
        "console_audit.html",
        principal=principal,
        entries=page,
        changes_words=views.changes_words,
        filters=filters,
        first_page=not before,
        first_url=f"/console/audit?{urlencode(filters)}",
        next_url=next_url,
    )


@router.get("/static/{name}")
def static(name: str) -> Response:
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(
        static_file(name),
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=3600"},
    )
