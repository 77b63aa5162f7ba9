"""``llmbilling explain FILE``: the readable explanation of every workspace in a JSON-lines file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.rule import Rule

from llmbilling.cli.batch import parse_batch_line
from llmbilling.cli.resolve_command import explain
from llmbilling.config.policy import load_policy
from llmbilling.config.registry import load_registry
from llmbilling.core.resolve import resolve_billing_mode
from llmbilling.errors import InvalidInputError


def explain_file(
    path: Annotated[Path, typer.Argument(help="JSON lines, one workspace's inputs per line.")],
    proxy: Annotated[
        bool, typer.Option("--proxy/--no-proxy", help="Metering proxy configured (SaaS).")
    ] = True,
    registry: Annotated[
        Path | None, typer.Option(help="Registry YAML (default: the built-in one).")
    ] = None,
    policy: Annotated[
        Path | None, typer.Option(help="Precedence policy YAML (default: the contract's).")
    ] = None,
) -> None:
    """Explain the decision of each workspace in FILE (same line format as resolve --batch)."""
    compiled = load_registry(registry)
    compiled_policy = load_policy(policy)
    console = Console()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError("FILE", f"cannot read {str(path)!r}: {exc}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            inputs = parse_batch_line(line, proxy_configured=proxy)
        except InvalidInputError as exc:
            raise InvalidInputError(f"line {number}: {exc.field}", exc.message) from None
        decision = resolve_billing_mode(inputs, compiled, compiled_policy)
        title = inputs.workspace_id or "(no workspace id: pre-provision path)"
        console.print(Rule(f"{title}  {inputs.runtime or '-'} / {inputs.model or '-'}"))
        explain(decision, console)
