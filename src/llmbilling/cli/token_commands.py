"""``llmbilling token create|list|revoke``: bearer tokens of the admin API.

``create`` prints the token on stdout (alone, so ``TOKEN=$(llmbilling token create …)``
works) and only once: the store keeps its SHA-256, nothing that could show it again.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

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
from llmbilling.service import tokens
from llmbilling.service.tokens import SCOPE_VALUES

token_app = typer.Typer(help="Bearer tokens of the admin API.", no_args_is_help=True)


@token_app.command("create")
def token_create(
    scope: Annotated[str, typer.Option("--scope", help=", ".join(SCOPE_VALUES))],
    org: Annotated[
        str | None,
        typer.Option("--org", help="The org, id or unique name (every scope but admin)."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="What the token is for.")] = None,
    as_json: JsonOption = False,
    actor: ActorOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create a token and print it; it cannot be shown again."""
    with service_context(database_url) as context:
        issued = tokens.create_token(
            context,
            scope=scope,
            org_id=None if org is None else org_option(context, org),
            name=name,
            audit_context=audit_context(actor),
        )
    if as_json:
        print_json({**issued.info.to_dict(), "token": issued.token})
        return
    print(issued.token)
    print(
        f"llmbilling: token {issued.info.id} ({issued.info.scope.value}) created;"
        " it is shown only this once",
        file=sys.stderr,
    )


@token_app.command("list")
def token_list(
    org: Annotated[
        str | None, typer.Option("--org", help="Only this org's tokens (id or unique name).")
    ] = None,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """List tokens (never the tokens themselves), revoked ones included."""
    with service_context(database_url) as context:
        found = tokens.list_tokens(
            context, org_id=None if org is None else org_option(context, org)
        )
    if as_json:
        print_json([info.to_dict() for info in found])
        return
    rows = [
        [
            str(info.id),
            info.name or "-",
            info.scope.value,
            str(info.org_id or "-"),
            info.created_at.isoformat(timespec="seconds"),
            "-" if info.revoked_at is None else info.revoked_at.isoformat(timespec="seconds"),
        ]
        for info in found
    ]
    print_rows(["id", "name", "scope", "org", "created", "revoked"], rows, console=console)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="Token id (from `token list`).")],
    actor: ActorOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Revoke a token: it stops working at once."""
    with service_context(database_url) as context:
        info = tokens.revoke_token(context, token_id, audit_context=audit_context(actor))
    console.print(f"token {info.id} revoked")
