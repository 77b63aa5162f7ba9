"""``llmbilling secrets set|delete|list|rotate``. Values come from stdin or a hidden prompt
only; ``set`` and ``delete`` take ``--preview`` (a plan, nothing written: cli/plan_commands.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated
from uuid import UUID

import typer

from llmbilling.cli.plan_commands import (
    AcknowledgeOption,
    PreviewOption,
    guard_of,
    propose_and_print,
    refuse_preview_with_acknowledge,
)
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
from llmbilling.errors import InvalidInputError
from llmbilling.service import plans, secrets
from llmbilling.service.context import ServiceContext
from llmbilling.store.crypto import SecretScopeName
from llmbilling.store.engine import Connection

secrets_app = typer.Typer(
    help="Org- and workspace-scope secrets (values encrypted at rest, never shown).",
    no_args_is_help=True,
)

OrgOption = Annotated[
    str | None, typer.Option("--org", help="Org-scope: this organization (id or unique name).")
]
WorkspaceOption = Annotated[
    str | None, typer.Option("--workspace", help="Workspace-scope: this workspace.")
]


def _owner(org: str | None, workspace: str | None) -> tuple[SecretScopeName, str]:
    if (org is None) == (workspace is None):
        raise InvalidInputError("scope", "give exactly one of --org and --workspace")
    if org is not None:
        return "org", org
    assert workspace is not None
    return "workspace", workspace


def read_value(name: str) -> str:
    # Never from argv: argv is visible to every user of the machine and lands in shell history.
    if sys.stdin.isatty():
        value: str = typer.prompt(f"value of {name}", hide_input=True)
    else:
        value = sys.stdin.read()
        if value.endswith("\n"):
            value = value[:-1]
            if value.endswith("\r"):
                value = value[:-1]
    if not value:
        raise InvalidInputError("value", "is empty (give it on stdin or at the prompt)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # Never echo any of it: it is a secret.
        raise InvalidInputError("value", "is not valid UTF-8") from None
    return value


@secrets_app.command("set")
def secrets_set(
    name: Annotated[str, typer.Argument(help="Env var name, e.g. ANTHROPIC_API_KEY.")],
    org: OrgOption = None,
    workspace: WorkspaceOption = None,
    preview: PreviewOption = False,
    acknowledge: AcknowledgeOption = None,
    as_json: JsonOption = False,
    actor: ActorOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Set a secret; the value is read from stdin (or a hidden prompt on a terminal). With
    --preview no value is read: `plan apply` reads it."""
    scope, owner = _owner(org, workspace)
    refuse_preview_with_acknowledge(preview, acknowledge)
    value = None if preview else read_value(name)
    with service_context(database_url) as context:
        owner_id = org_option(context, owner) if scope == "org" else owner
        if preview:
            # A model name (its value decides) has no plan: the builder refuses it.
            change = plans.secret_change(scope, owner_id, name, present=True)
            propose_and_print(context, change, actor=actor, as_json=as_json)
            return
        assert value is not None
        info = secrets.set_secret(
            context,
            scope,
            owner_id,
            name,
            value,
            audit_context=audit_context(actor),
            under_lock=_guard(context, scope, owner_id, name, True, acknowledge),
        )
    if as_json:
        print_json(info.to_dict())
        return
    console.print(f"{info.scope} secret {info.name} set (key v{info.key_version})")


@secrets_app.command("delete")
def secrets_delete(
    name: Annotated[str, typer.Argument(help="Env var name, e.g. ANTHROPIC_API_KEY.")],
    org: OrgOption = None,
    workspace: WorkspaceOption = None,
    preview: PreviewOption = False,
    acknowledge: AcknowledgeOption = None,
    as_json: JsonOption = False,
    actor: ActorOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Delete a secret (a credential going can leave a byok workspace without one)."""
    scope, owner = _owner(org, workspace)
    refuse_preview_with_acknowledge(preview, acknowledge)
    with service_context(database_url) as context:
        owner_id = org_option(context, owner) if scope == "org" else owner
        if preview:
            change = plans.secret_change(scope, owner_id, name, present=False)
            propose_and_print(context, change, actor=actor, as_json=as_json)
            return
        deleted = secrets.delete_secret(
            context,
            scope,
            owner_id,
            name,
            audit_context=audit_context(actor),
            under_lock=_guard(context, scope, owner_id, name, False, acknowledge),
        )
    if as_json:
        print_json({"scope": scope, "name": name, "deleted": deleted})
        return
    console.print(f"{scope} secret {name} {'deleted' if deleted else 'was not set'}")


def _guard(
    context: ServiceContext,
    scope: SecretScopeName,
    owner_id: UUID | str,
    name: str,
    present: bool,
    acknowledge: list[str] | None,
) -> Callable[[Connection], None] | None:
    """The deployment's check of the write; the model names (their value decides, so no
    preview judges them) pass unguarded."""
    if name in plans.MODEL_SECRET_NAMES:
        return None
    change = plans.secret_change(scope, owner_id, name, present=present)
    return guard_of(context, change, acknowledge)


@secrets_app.command("list")
def secrets_list(
    org: OrgOption = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """List secret names, scope and key version (never values)."""
    scope, owner = _owner(org, workspace)
    with service_context(database_url) as context:
        found = secrets.list_secrets(
            context, scope, org_option(context, owner) if scope == "org" else owner
        )
    if as_json:
        print_json([info.to_dict() for info in found])
        return
    rows = [
        [info.name, info.scope, f"v{info.key_version}", info.updated_at.isoformat()]
        for info in found
    ]
    print_rows(["name", "scope", "key version", "updated"], rows, console=console)


@secrets_app.command("rotate")
def secrets_rotate(
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Secrets per committed batch.")
    ] = secrets.ROTATION_BATCH_SIZE,
    actor: ActorOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Re-encrypt every secret under the newest key. Safe to interrupt and run again."""
    with service_context(database_url) as context:
        report = secrets.rotate_secrets(
            context, batch_size=batch_size, audit_context=audit_context(actor)
        )
        remaining = secrets.pending_rotation(context)
    console.print(
        f"rotated {report.total} secret(s) to key v{report.newest_version}"
        f" (org {report.rotated['org']}, workspace {report.rotated['workspace']});"
        f" {remaining} remaining"
    )
