"""``llmbilling resolve``: one decision explained, or a JSON-lines batch."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, BinaryIO

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llmbilling.cli.batch import CALLER_REPORTED_READ_FAILURE, resolve_lines
from llmbilling.cli.options import parse_mode_option
from llmbilling.cli.tables import print_rows
from llmbilling.config.policy import load_policy
from llmbilling.config.registry import load_registry
from llmbilling.core.decision import BillingDecision, OverrideReadFailure, ResolutionInput
from llmbilling.core.modes import RungStatus
from llmbilling.core.policy import CompiledPolicy
from llmbilling.core.registry import CompiledRegistry
from llmbilling.core.resolve import resolve_billing_mode
from llmbilling.errors import InvalidInputError

_SINGLE_ONLY = (
    "--runtime",
    "--model",
    "--override",
    "--override-read-failed",
    "--org-default",
    "--auth-env",
    "--workspace-id",
)


def resolve(
    runtime: Annotated[str | None, typer.Option(help="Agent runtime, e.g. claude-code.")] = None,
    model: Annotated[str | None, typer.Option(help="Selected model id.")] = None,
    override: Annotated[
        str | None, typer.Option(help="Stored workspace override: platform_managed|byok|disabled.")
    ] = None,
    override_read_failed: Annotated[
        bool, typer.Option("--override-read-failed", help="Simulate a failed override read.")
    ] = False,
    org_default: Annotated[
        str | None, typer.Option(help="Org default as raw configured text.")
    ] = None,
    auth_env: Annotated[
        list[str] | None, typer.Option(help="Credential env NAME present (repeatable).")
    ] = None,
    workspace_id: Annotated[
        str | None, typer.Option(help="Workspace id; empty for the pre-provision path.")
    ] = None,
    proxy: Annotated[
        bool, typer.Option("--proxy/--no-proxy", help="Metering proxy configured (SaaS).")
    ] = True,
    registry: Annotated[
        Path | None, typer.Option(help="Registry YAML (default: the built-in one).")
    ] = None,
    policy: Annotated[
        Path | None, typer.Option(help="Precedence policy YAML (default: the contract's).")
    ] = None,
    batch: Annotated[str | None, typer.Option(help="JSON-lines input file, '-' for stdin.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the decision record as JSON.")
    ] = False,
) -> None:
    """Decide the billing mode of one workspace and explain it, or of every line of a batch."""
    compiled = load_registry(registry)
    compiled_policy = load_policy(policy)
    if batch is not None:
        single_values = (
            runtime,
            model,
            override,
            override_read_failed or None,
            org_default,
            auth_env,
            workspace_id,
        )
        given = [
            name
            for name, value in zip(_SINGLE_ONLY, single_values, strict=True)
            if value is not None
        ]
        if given:
            raise InvalidInputError("--batch", f"cannot be combined with {', '.join(given)}")
        _resolve_batch(batch, compiled, compiled_policy, proxy_configured=proxy)
        return
    if runtime is None:
        raise InvalidInputError("--runtime", "is required unless --batch is given")
    mode = parse_mode_option("--override", override)
    stored: str | OverrideReadFailure | None = None if mode is None else mode.value
    if override_read_failed:
        stored = CALLER_REPORTED_READ_FAILURE
    decision = resolve_billing_mode(
        ResolutionInput(
            workspace_id=workspace_id,
            override=stored,
            org_default=org_default,
            runtime=runtime,
            model=model,
            auth_env=frozenset(auth_env or ()),
            proxy_configured=proxy,
        ),
        compiled,
        compiled_policy,
    )
    if as_json:
        typer.echo(json.dumps(decision.to_dict(), indent=2))
    else:
        explain(decision, Console())


def _resolve_batch(
    batch: str, registry: CompiledRegistry, policy: CompiledPolicy, *, proxy_configured: bool
) -> None:
    if batch == "-":
        _stream(sys.stdin.buffer, registry, policy, proxy_configured)
        return
    try:
        handle = open(batch, "rb")  # noqa: SIM115 - closed below, streamed line by line
    except OSError as exc:
        raise InvalidInputError("--batch", f"cannot read {batch!r}: {exc.strerror}") from None
    with handle:
        _stream(handle, registry, policy, proxy_configured)


def _stream(
    source: BinaryIO, registry: CompiledRegistry, policy: CompiledPolicy, proxy_configured: bool
) -> None:
    write = sys.stdout.write
    for line in resolve_lines(source, registry, policy, proxy_configured=proxy_configured):
        write(line)
        write("\n")
    sys.stdout.flush()


_STATUS_STYLE = {
    RungStatus.DECIDED: "bold green",
    RungStatus.SKIPPED: "dim",
    RungStatus.FAILED: "bold red",
}


def explain(decision: BillingDecision, console: Console) -> None:
    """Print a decision for people: the mode and source, then the trace as a table."""
    console.print(
        f"[bold]mode[/bold] {decision.mode.value}   [bold]source[/bold] {decision.source.value}",
        highlight=False,
    )
    console.print(f"provider: {decision.provider or '-'}", highlight=False, markup=False)
    console.print(
        f"derivation: {decision.derivation.outcome.value} ({decision.derivation.detail})",
        highlight=False,
        markup=False,
    )
    if decision.error is not None:
        console.print(
            f"error: {decision.error.code}: {decision.error.message}",
            style="bold red",
            highlight=False,
            markup=False,
        )
    if not console.is_terminal:
        rows = [
            [str(number), entry.rung.value, entry.status.value, entry.why]
            for number, entry in enumerate(decision.trace, start=1)
        ]
        print_rows(["#", "rung", "status", "why"], rows, console=console, title="why this mode")
        return
    table = Table(title="why this mode", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("rung")
    table.add_column("status")
    table.add_column("why")
    for number, entry in enumerate(decision.trace, start=1):
        table.add_row(
            str(number),
            entry.rung.value,
            f"[{_STATUS_STYLE[entry.status]}]{entry.status.value}[/]",
            escape(entry.why),
        )
    console.print(table)
