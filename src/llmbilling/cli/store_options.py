"""What the stored-state commands share: settings from flags, the service context, output."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.console import Console

from llmbilling.config.settings import Settings
from llmbilling.service.audit import AuditContext, default_actor
from llmbilling.service.context import ServiceContext
from llmbilling.service.orgs import resolve_org

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL (default: LLMBILLING_DATABASE_URL, else ./llmbilling.sqlite3)",
        show_default=False,
    ),
]
ActorOption = Annotated[
    str | None,
    typer.Option("--actor", help="Who is making the change (audit log); default cli:<os user>"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

console = Console()


def settings_from_flags(database_url: str | None) -> Settings:
    """Settings with CLI flags on top of env vars and ``.env`` (flags win)."""
    overrides: dict[str, Any] = {}
    if database_url is not None:
        overrides["database_url"] = database_url
    return Settings(**overrides)


def _configure_logging() -> None:
    # Warnings (e.g. a generated development key ring) must reach the operator on stderr.
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("llmbilling: %(levelname)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.WARNING)


@contextmanager
def service_context(database_url: str | None) -> Iterator[ServiceContext]:
    _configure_logging()
    # Only `db upgrade` and `serve --demo` create a database: a mistyped path is an error.
    context = ServiceContext.from_settings(settings_from_flags(database_url), create_database=False)
    try:
        yield context
    finally:
        context.close()


def org_option(context: ServiceContext, text: str) -> UUID:
    """What an ``--org`` names: an org id, or the unique name of an org (ignoring case); an
    unknown or shared name is an error listing candidates with their ids."""
    return resolve_org(context, text, field="--org")


def audit_context(actor: str | None) -> AuditContext:
    return AuditContext(actor=actor or default_actor())


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False) + "\n")
