"""``llmbilling org …`` and ``llmbilling workspace …``: real state, every write audited."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from llmbilling.cli.plan_commands import (
    AcknowledgeOption,
    PreviewOption,
    ReasonOption,
    guard_of,
    propose_and_print,
    refuse_preview_with_acknowledge,
)
from llmbilling.cli.resolve_command import explain
from llmbilling.cli.store_options import (
    ActorOption,
    DatabaseUrlOption,
    JsonOption,
    audit_context,
    console,
    org_option,
    print_json,
    service_context,
)
from llmbilling.cli.tables import print_rows
from llmbilling.core.decision import BillingDecision
from llmbilling.errors import InvalidInputError
from llmbilling.service import admin, orgs, plans
from llmbilling.service.admin import OrgView, WorkspaceView
from llmbilling.service.context import parse_id
from llmbilling.service.resolve import resolve_workspace
from llmbilling.store.tables import DEFAULT_RUNTIME

org_app = typer.Typer(help="Organizations and their default billing mode.", no_args_is_help=True)
workspace_app = typer.Typer(
    help="Workspaces, their overrides and their decisions.", no_args_is_help=True
)

OrgIdArgument = Annotated[str, typer.Argument(help="Organization id (UUID).")]
WorkspaceIdArgument = Annotated[str, typer.Argument(help="Workspace id (UUID).")]


def _show_org(org: OrgView) -> None:
    document = org.to_dict()
    default = document.pop("llm_billing_mode_default")
    rows = [[key, str(value)] for key, value in document.items()]
    rows.append(["default (raw)", repr(default["raw"]) if default["raw"] is not None else "-"])
    rows.append(["default (recognized)", default["recognized"] or "-"])
    print_rows(None, rows, console=console)


@org_app.command("create")
def org_create(
    name: Annotated[str, typer.Argument(help="Display name.")],
    default: Annotated[
        str | None, typer.Option("--default", help="Org default billing mode.")
    ] = None,
    org_id: Annotated[str | None, typer.Option("--id", help="Use this UUID.")] = None,
    as_json: JsonOption = False,
    actor: ActorOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create an organization; prints its id."""
    with service_context(database_url) as context:
        org = admin.create_org(
            context,
            name,
            billing_mode_default=default,
            org_id=None if org_id is None else parse_id("org_id", org_id),
            audit_context=audit_context(actor),
        )
    if as_json:
        print_json(org.to_dict())
    else:
        print(org.id)


@org_app.command("show")
def org_show(
    org_id: OrgIdArgument, as_json: JsonOption = False, database_url: DatabaseUrlOption = None
) -> None:
    """Show an organization and its default (raw as stored, and as recognized)."""
    with service_context(database_url) as context:
        org = admin.get_org(context, org_id)
    if as_json:
        print_json(org.to_dict())
    else:
        _show_org(org)


@org_app.command("set-default")
def org_set_default(
    org_id: OrgIdArgument,
    mode: Annotated[str | None, typer.Argument(help="The org default billing mode.")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the org default.")] = False,
    reason: ReasonOption = None,
    preview: PreviewOption = False,
    acknowledge: AcknowledgeOption = None,
    as_json: JsonOption = False,
    actor: ActorOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Set (or --clear) an organization's default billing mode."""
    if (mode is None) == (not clear):
        raise InvalidInputError("mode", "give a mode or --clear, not both or neither")
    refuse_preview_with_acknowledge(preview, acknowledge)
    with service_context(database_url) as context:
        change = plans.org_default_change(org_id, None if clear else mode)
        if preview:
            propose_and_print(context, change, actor=actor, as_json=as_json)
            return
        org = admin.set_org_default(
            context,
            change.org_id,
            change.mode,
            audit_context=audit_context(actor),
            reason=reason,
            under_lock=guard_of(context, change, acknowledge),
        )
    if as_json:
        print_json(org.to_dict())
    else:
        _show_org(org)


@org_app.command("list")
def org_list(
    limit: Annotated[int, typer.Option("--limit", help="At most this many.", min=1)] = 1000,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """List organizations by name, with their default and workspace count."""
    with service_context(database_url) as context:
        found: list[orgs.OrgSummary] = []
        after = None
        while len(found) < limit:
            page = orgs.list_orgs(
                context, only=None, after=after, limit=min(500, limit - len(found))
            )
            found.extend(page.orgs)
            if page.next_after is None:
                break
            after = page.next_after
    if as_json:
        print_json(
            [
                {
                    "id": str(org.id),
                    "name": org.name,
                    "llm_billing_mode_default": org.billing_mode_default_raw,
                    "workspace_count": org.workspace_count,
                }
                for org in found
            ]
        )
        return
    rows = [
        [
            str(org.id),
            org.name,
            "-" if org.billing_mode_default_raw is None else repr(org.billing_mode_default_raw),
            f"{org.workspace_count:,}",
        ]
        for org in found
    ]
    print_rows(["id", "name", "default (raw)", "workspaces"], rows, console=console)


def _show_workspace(workspace: WorkspaceView, decision: BillingDecision) -> None:
    """The workspace's columns and provisioning verdict, then its decision explained (mode,
    source, provider, derivation, and the trace: why this mode)."""
    rows = [
        [key, "-" if value is None else str(value)] for key, value in workspace.to_dict().items()
    ]
    verdict = decision.to_dict()["provisioning"]
    assert isinstance(verdict, dict)
    rows.append(["provisioning", provisioning_text(verdict)])
    print_rows(None, rows, console=console)
    explain(decision, console)


def provisioning_text(verdict: dict[str, Any]) -> str:
    """A record's provisioning verdict on one line: ``ok``, or the code and what would fix it."""
    status = str(verdict["status"])
    if status != "MISSING_BYOK_CREDENTIAL":
        return status
    provider = verdict["provider"] or "any vendor"
    return f"{status} (provider {provider}; set any of: {', '.join(verdict['satisfied_by'])})"


@workspace_app.command("create")
def workspace_create(
    org: Annotated[str, typer.Option("--org", help="Owning organization: id or unique name.")],
    runtime: Annotated[str, typer.Option("--runtime", help="Agent runtime.")] = DEFAULT_RUNTIME,
    model: Annotated[str | None, typer.Option("--model", help="Selected model.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    override: Annotated[
        str | None, typer.Option("--override", help="Billing mode override.")
    ] = None,
    workspace_id: Annotated[str | None, typer.Option("--id", help="Use this UUID.")] = None,
    as_json: JsonOption = False,
    actor: ActorOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create a workspace; prints its id."""
    with service_context(database_url) as context:
        workspace = admin.create_workspace(
            context,
            org_option(context, org),
            runtime=runtime,
            model=model,
            name=name,
            override=override,
            workspace_id=None if workspace_id is None else parse_id("workspace_id", workspace_id),
            audit_context=audit_context(actor),
        )
    if as_json:
        print_json(workspace.to_dict())
    else:
        print(workspace.id)


@workspace_app.command("show")
def workspace_show(
    workspace_id: WorkspaceIdArgument,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Show a workspace, its provisioning verdict and its decision explained (the trace)."""
    with service_context(database_url) as context:
        workspace = admin.get_workspace(context, workspace_id)
        decision = resolve_workspace(context, workspace.id)
    if as_json:
        print_json({"workspace": workspace.to_dict(), "decision": decision.to_dict()})
    else:
        _show_workspace(workspace, decision)


@workspace_app.command("set-override")
def workspace_set_override(
    workspace_id: WorkspaceIdArgument,
    mode: Annotated[str, typer.Argument(help="platform_managed, byok or disabled.")],
    reason: ReasonOption = None,
    expires_at: Annotated[
        str | None,
        typer.Option(
            "--expires-at",
            help="RFC 3339 time with a time zone (e.g. 2030-01-31T12:00:00Z): past it the"
            " override no longer decides.",
        ),
    ] = None,
    preview: PreviewOption = False,
    acknowledge: AcknowledgeOption = None,
    as_json: JsonOption = False,
    actor: ActorOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Pin a workspace's billing mode."""
    refuse_preview_with_acknowledge(preview, acknowledge)
    with service_context(database_url) as context:
        change = plans.override_change(workspace_id, mode, expires_at)
        if preview:
            propose_and_print(context, change, actor=actor, as_json=as_json)
            return
        written = admin.set_override(
            context,
            workspace_id,
            mode,
            audit_context=audit_context(actor),
            reason=reason,
            expires_at=expires_at,
            under_lock=guard_of(context, change, acknowledge),
        )
    if as_json:
        print_json(written.decision.to_dict())
        return
    decision = written.decision
    console.print(
        f"workspace {decision.workspace_id}: override {mode}"
        f" (decides {decision.mode.value}, source {decision.source.value})"
    )


@workspace_app.command("clear-override")
def workspace_clear_override(
    workspace_id: WorkspaceIdArgument,
    reason: ReasonOption = None,
    preview: PreviewOption = False,
    acknowledge: AcknowledgeOption = None,
    as_json: JsonOption = False,
    actor: ActorOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Remove a workspace's override: it inherits again."""
    refuse_preview_with_acknowledge(preview, acknowledge)
    with service_context(database_url) as context:
        change = plans.override_change(workspace_id, None)
        if preview:
            propose_and_print(context, change, actor=actor, as_json=as_json)
            return
        written = admin.set_override(
            context,
            workspace_id,
            None,
            audit_context=audit_context(actor),
            reason=reason,
            under_lock=guard_of(context, change, acknowledge),
        )
    if as_json:
        print_json(written.decision.to_dict())
        return
    decision = written.decision
    console.print(
        f"workspace {decision.workspace_id}: override cleared (inherit; decides"
        f" {decision.mode.value}, source {decision.source.value})"
    )


@workspace_app.command("list")
def workspace_list(
    org: Annotated[
        str | None, typer.Option("--org", help="Only this organization: id or unique name.")
    ] = None,
    mode: Annotated[
        str | None, typer.Option("--mode", help="Only workspaces whose DECIDED mode is this.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many.")] = 100,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """List workspaces in id order with their decided mode and source."""
    with service_context(database_url) as context:
        org_id = None if org is None else org_option(context, org)
        found = admin.list_workspaces(context, org_id=org_id, mode=mode, limit=limit)
    if as_json:
        print_json(
            [
                {
                    **item.workspace.to_dict(),
                    "mode": item.decision.mode.value,
                    "source": item.decision.source.value,
                }
                for item in found
            ]
        )
        return
    rows = [
        [
            str(item.workspace.id),
            str(item.workspace.org_id),
            item.workspace.runtime,
            item.workspace.model or "-",
            item.workspace.override or "-",
            item.decision.mode.value,
            item.decision.source.value,
        ]
        for item in found
    ]
    headers = ["id", "org", "runtime", "model", "override", "mode", "source"]
    print_rows(headers, rows, console=console)
