"""``llmbilling org …`` and ``llmbilling workspace …``: real state, every write audited."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from llmbilling.cli import provision_command, secrets_commands, store_commands
from llmbilling.cli.store_options import (
    ActorOption,
    DatabaseUrlOption,
    JsonOption,
    audit_context,
    console,
    print_json,
    service_context,
)
from llmbilling.errors import InvalidInputError
from llmbilling.service import admin
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
    table = Table(show_header=False, box=None)
    document = org.to_dict()
    default = document.pop("llm_billing_mode_default")
    for key, value in document.items():
        table.add_row(key, str(value))
    table.add_row("default (raw)", repr(default["raw"]) if default["raw"] is not None else "-")
    table.add_row("default (recognized)", default["recognized"] or "-")
    console.print(table)


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
    as_json: JsonOption = False,
    actor: ActorOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Set (or --clear) an organization's default billing mode."""
    if (mode is None) == (not clear):
        raise InvalidInputError("mode", "give a mode or --clear, not both or neither")
    with service_context(database_url) as context:
        org = admin.set_org_default(
            context, org_id, None if clear else mode, audit_context=audit_context(actor)
        )
    if as_json:
        print_json(org.to_dict())
    else:
        _show_org(org)


def _show_workspace(workspace: WorkspaceView, decision: dict[str, object]) -> None:
    table = Table(show_header=False, box=None)
    for key, value in workspace.to_dict().items():
        table.add_row(key, "-" if value is None else str(value))
    table.add_row("decided mode", str(decision["mode"]))
    table.add_row("decided by", str(decision["source"]))
    table.add_row("provider", str(decision["provider"] or "-"))
    error = decision.get("error")
    if isinstance(error, dict):
        table.add_row("error", f"{error['code']}: {error['message']}")
    console.print(table)


@workspace_app.command("create")
def workspace_create(
    org: Annotated[str, typer.Option("--org", help="Owning organization id.")],
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
            org,
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
    """Show a workspace and its current decision (read path: one SQL statement)."""
    with service_context(database_url) as context:
        workspace = admin.get_workspace(context, workspace_id)
        decision = resolve_workspace(context, workspace.id).to_dict()
    if as_json:
        print_json({"workspace": workspace.to_dict(), "decision": decision})
    else:
        _show_workspace(workspace, decision)


@workspace_app.command("set-override")
def workspace_set_override(
    workspace_id: WorkspaceIdArgument,
    mode: Annotated[str, typer.Argument(help="platform_managed, byok or disabled.")],
    actor: ActorOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Pin a workspace's billing mode."""
    with service_context(database_url) as context:
        written = admin.set_override(
            context, workspace_id, mode, audit_context=audit_context(actor)
        )
    decision = written.decision
    console.print(
        f"workspace {decision.workspace_id}: override {mode}"
        f" (decides {decision.mode.value}, source {decision.source.value})"
    )


@workspace_app.command("clear-override")
def workspace_clear_override(
    workspace_id: WorkspaceIdArgument,
    actor: ActorOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Remove a workspace's override: it inherits again."""
    with service_context(database_url) as context:
        written = admin.set_override(
            context, workspace_id, None, audit_context=audit_context(actor)
        )
    decision = written.decision
    console.print(
        f"workspace {decision.workspace_id}: override cleared (inherit; decides"
        f" {decision.mode.value}, source {decision.source.value})"
    )


@workspace_app.command("list")
def workspace_list(
    org: Annotated[str | None, typer.Option("--org", help="Only this organization.")] = None,
    mode: Annotated[
        str | None, typer.Option("--mode", help="Only workspaces whose DECIDED mode is this.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many.")] = 100,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """List workspaces in id order with their decided mode and source."""
    with service_context(database_url) as context:
        found = admin.list_workspaces(context, org_id=org, mode=mode, limit=limit)
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
    table = Table("id", "org", "runtime", "model", "override", "mode", "source")
    for item in found:
        workspace = item.workspace
        table.add_row(
            str(workspace.id),
            str(workspace.org_id),
            workspace.runtime,
            workspace.model or "-",
            workspace.override or "-",
            item.decision.mode.value,
            item.decision.source.value,
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the stored-state commands to the root app."""
    app.add_typer(org_app, name="org")
    app.add_typer(workspace_app, name="workspace")
    app.add_typer(secrets_commands.secrets_app, name="secrets")
    app.add_typer(store_commands.db_app, name="db")
    app.add_typer(store_commands.demo_app, name="demo")
    app.command("provision-env")(provision_command.provision_env)
