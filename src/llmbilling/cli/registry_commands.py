"""``llmbilling registry check|lookup|show|diff``: validate a registry file; show how a model
derives; print the effective registry; compare two registries (and the stored fleet under
both)."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from llmbilling.cli.store_options import (
    DatabaseUrlOption,
    print_json,
    service_context,
    settings_from_flags,
)
from llmbilling.cli.whatif_command import DANGER_EXIT_CODE
from llmbilling.config.registry import built_in_registry, load_registry
from llmbilling.config.settings import Settings
from llmbilling.config.yaml_documents import dump_json_document, dump_yaml_document
from llmbilling.core.derivation import derive_provider
from llmbilling.core.modes import DerivationOutcome, deployment_default
from llmbilling.core.provisioning import ProxySettings
from llmbilling.core.registry import CompiledRegistry, Rule
from llmbilling.core.registry_diff import (
    DerivedMode,
    EntryChange,
    FleetDiff,
    InputChange,
    RegistryDiff,
    diff_fleet,
    diff_registries,
)
from llmbilling.service.registry_diff import fleet_groups
from llmbilling.store.engine import normalize_database_url

BUILT_IN_SOURCE = "built-in"
"""What ``registry diff`` takes, for OLD or NEW, to mean the registry shipped with the package."""

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


class RegistryFormat(StrEnum):
    YAML = "yaml"
    JSON = "json"


@registry_app.command("show")
def show(
    output_format: Annotated[
        RegistryFormat, typer.Option("--format", help="yaml (with a version comment) or json.")
    ] = RegistryFormat.YAML,
    registry: Annotated[
        Path | None,
        typer.Option(
            help="Registry file (default: LLMBILLING_REGISTRY_PATH, else the built-in one)."
        ),
    ] = None,
) -> None:
    """Print the effective registry as a file `registry check` accepts, with the same version."""
    compiled = load_registry(
        registry if registry is not None else settings_from_flags(None).registry_path
    )
    document = compiled.to_document()
    if output_format is RegistryFormat.JSON:
        sys.stdout.write(dump_json_document(document) + "\n")
    else:
        sys.stdout.write(f"# version: {compiled.version}\n" + dump_yaml_document(document))


@registry_app.command("diff")
def diff(
    old: Annotated[str, typer.Argument(help="Registry file, or 'built-in'.", show_default=False)],
    new: Annotated[str, typer.Argument(help="Registry file, or 'built-in'.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    proxy: Annotated[
        bool | None,
        typer.Option(
            "--proxy/--no-proxy",
            help="Metering proxy configured, for the deployment default"
            " (default: the configured deployment's proxy settings).",
            show_default=False,
        ),
    ] = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Compare two registries: rules, providers, runtimes, the inputs that derive differently,
    and the stored fleet's (when a database is configured). Exit 10 when a mode changes."""
    settings = settings_from_flags(database_url)
    old_registry, new_registry = _load_source(old), _load_source(new)
    proxy_configured = (
        ProxySettings.from_env(settings.proxy_env()).configured if proxy is None else proxy
    )
    changes = diff_registries(old_registry, new_registry, proxy_configured=proxy_configured)
    fleet: FleetDiff | None = None
    if _stored_fleet_configured(settings):
        with service_context(database_url) as context:
            grouped = fleet_groups(context, (old_registry, new_registry))
        fleet = diff_fleet(
            old_registry,
            new_registry,
            grouped.groups,
            unreadable=grouped.unreadable,
            proxy_configured=proxy_configured,
        )
    deployment = {
        "proxy_configured": proxy_configured,
        "default_mode": deployment_default(proxy_configured).value,
        "proxy_from": "settings" if proxy is None else ("--proxy" if proxy else "--no-proxy"),
    }
    sources = {
        "old": {"source": old, "version": old_registry.version},
        "new": {"source": new, "version": new_registry.version},
    }
    mode_changed = changes.mode_changed or (fleet is not None and fleet.mode_changed)
    if as_json:
        if fleet is None:
            print(f"llmbilling: {_FLEET_SKIPPED}", file=sys.stderr)
        print_json(
            {
                **sources,
                "deployment": deployment,
                "rule_changes": [change.to_dict() for change in changes.rule_changes],
                "provider_changes": [
                    change.to_dict("provider") for change in changes.provider_changes
                ],
                "runtime_changes": [
                    change.to_dict("runtime") for change in changes.runtime_changes
                ],
                "input_changes": [change.to_dict() for change in changes.input_changes],
                "fleet": None if fleet is None else fleet.to_dict(),
                "mode_changed": mode_changed,
            }
        )
    else:
        _print_diff(Console(), sources, deployment, changes, fleet)
    if mode_changed:
        raise typer.Exit(DANGER_EXIT_CODE)


_FLEET_SKIPPED = (
    "fleet: skipped, no database configured (--database-url or LLMBILLING_DATABASE_URL;"
    " a SQLite file must exist)"
)


def _load_source(source: str) -> CompiledRegistry:
    return built_in_registry() if source == BUILT_IN_SOURCE else load_registry(Path(source))


def _stored_fleet_configured(settings: Settings) -> bool:
    """A store to read: a PostgreSQL URL, or a SQLite file that exists. A SQLite file that
    does not is no fleet: opening it would create an empty database."""
    url = normalize_database_url(settings.database_url)
    if url.get_backend_name() != "sqlite":
        return True
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return False
    return Path(database).expanduser().is_file()


def _print_diff(
    console: Console,
    sources: dict[str, dict[str, str]],
    deployment: dict[str, Any],
    changes: RegistryDiff,
    fleet: FleetDiff | None,
) -> None:
    def say(line: str, style: str = "") -> None:
        console.print(Text(line, style=style), soft_wrap=True)

    for side in ("old", "new"):
        say(f"{side}: {sources[side]['source']} ({sources[side]['version']})")
    proxy = "proxy configured" if deployment["proxy_configured"] else "no proxy"
    origin = deployment["proxy_from"]
    say(
        f"deployment: {proxy} ({'the deployment settings' if origin == 'settings' else origin});"
        f" a failed derivation decides {deployment['default_mode']}"
    )
    if not changes.has_changes:
        same = sources["old"]["version"] == sources["new"]["version"]
        say(
            "no changes"
            if same
            else "no changes derivation sees (the documents differ only in order or form)"
        )
    _print_entries(console, "provider changes", "provider", changes.provider_changes)
    _print_entries(console, "runtime changes", "runtime", changes.runtime_changes)
    if changes.rule_changes:
        table = _table("rule changes", "runtime", "provider", "added", "removed")
        for rule_change in changes.rule_changes:
            table.add_row(
                Text(rule_change.runtime),
                Text(rule_change.provider),
                Text(_rules(rule_change.added), style="green"),
                Text(_rules(rule_change.removed), style="red"),
            )
        console.print(table)
    if changes.input_changes:
        console.print(_input_table("probed inputs that derive differently", changes.input_changes))
    moved = sum(change.mode_changed for change in changes.input_changes)
    say(
        f"probes: {len(changes.input_changes):,} inputs derive differently,"
        f" {moved:,} of them change mode",
        "bold red" if moved else "",
    )
    if fleet is None:
        say(_FLEET_SKIPPED)
        return
    if fleet.changes:
        console.print(
            _input_table(
                "fleet groups that derive differently",
                [change.change for change in fleet.changes],
                [change.workspaces for change in fleet.changes],
            )
        )
    say(
        f"fleet: {fleet.workspaces:,} workspaces in {fleet.groups:,} distinct"
        f" (runtime, model, credentials); {len(fleet.changes):,} groups"
        f" ({fleet.changed_workspaces:,} workspaces) derive differently,"
        f" {fleet.mode_changed_workspaces:,} workspaces change mode"
        + (f"; {fleet.unreadable:,} unreadable (model secret)" if fleet.unreadable else ""),
        "bold red" if fleet.mode_changed else "",
    )


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _print_entries(
    console: Console, title: str, key: str, entries: tuple[EntryChange, ...]
) -> None:
    if not entries:
        return
    table = _table(title, key, "change", "field", "old", "new")
    for entry in entries:
        for field in entry.fields:
            table.add_row(
                Text(entry.id),
                Text(entry.change.value),
                Text(field.field),
                Text(_value(field.old)),
                Text(_value(field.new)),
            )
    console.print(table)


def _input_table(
    title: str,
    changes: list[InputChange] | tuple[InputChange, ...],
    counts: list[int] | None = None,
) -> Table:
    columns = ["runtime", "model", "credentials", "old", "new"]
    table = _table(title, *columns, *(["workspaces"] if counts is not None else []))
    for index, change in enumerate(changes):
        style = "bold red" if change.mode_changed else ""
        row = [
            Text(change.runtime or "-"),
            Text(change.model or "-"),
            Text(", ".join(change.auth_env) or "none"),
            Text(_derived(change.old)),
            Text(_derived(change.new), style=style),
        ]
        if counts is not None:
            row.append(Text(f"{counts[index]:,}"))
        table.add_row(*row)
    return table


def _derived(derived: DerivedMode) -> str:
    """``byok (groq)``: the mode, and the provider or (when derivation failed) the outcome."""
    return f"{derived.mode.value} ({derived.provider or derived.outcome.value})"


def _rules(rules: tuple[Rule, ...]) -> str:
    return "\n".join(f"{rule.kind.value} {rule.text!r}" for rule in rules) or "-"


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(member) for member in value) or "[]"
    if isinstance(value, dict):
        return ", ".join(f"{key}={_value(member)}" for key, member in value.items())
    return str(value)
