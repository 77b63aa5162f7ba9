"""``llmbilling registry check|lookup``: validate a registry file; show how a model derives."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llmbilling.core.derivation import derive_provider
from llmbilling.core.modes import DerivationOutcome
from llmbilling.registry_files import load_registry

registry_app = typer.Typer(help="Validate and query provider registries.", no_args_is_help=True)


@registry_app.command("check")
def check(path: Annotated[Path, typer.Argument(help="Registry YAML file to validate.")]) -> None:
    """Validate a registry file; print a summary, or one line naming file, path and problem."""
    compiled = load_registry(path)
    rules = sum(len(table.exact) + len(table.prefixes) for table in compiled.tables.values())
    typer.echo(
        f"{path}: ok — {len(compiled.runtimes)} runtimes, {len(compiled.providers)} providers,"
        f" {rules} compiled rules, version {compiled.version}"
    )


@registry_app.command("lookup")
def lookup(
    model: Annotated[str, typer.Argument(help="Model id as the workspace selects it.")],
    runtime: Annotated[str, typer.Option(help="Agent runtime, e.g. claude-code.")],
    auth_env: Annotated[
        list[str] | None, typer.Option(help="Credential env NAME present (repeatable).")
    ] = None,
    registry: Annotated[
        Path | None, typer.Option(help="Registry YAML (default: the built-in one).")
    ] = None,
) -> None:
    """Show the candidate providers for a model and why one won (or none did)."""
    compiled = load_registry(registry)
    given = frozenset(auth_env or ())
    result = derive_provider(compiled, runtime, model, given)
    console = Console()
    console.print(f"[bold]outcome[/bold] {result.outcome.value}", highlight=False)
    console.print(f"provider: {result.provider or '-'}", highlight=False, markup=False)
    console.print(f"why: {result.detail}", highlight=False, markup=False)
    if not result.candidates:
        return
    table = Table(title="most specific candidates", title_justify="left")
    for column in ("provider", "rule", "auth env", "credential present", "result"):
        table.add_column(column, overflow="fold")
    for candidate in result.candidates:
        provider = compiled.providers[candidate.provider]
        present = provider.auth_env & given
        if candidate.provider == result.provider:
            verdict = "[bold green]won[/]"
        elif result.outcome is DerivationOutcome.AMBIGUOUS_MODEL:
            verdict = "[yellow]tied[/]"
        else:
            verdict = "[dim]lost[/]"
        table.add_row(
            candidate.provider,
            escape(f"{candidate.rule_kind.value} {candidate.rule!r}"),
            ", ".join(sorted(provider.auth_env)) or "-",
            ", ".join(sorted(present)) or "no",
            verdict,
        )
    console.print(table)
