"""``llmbilling policy check|show``: validate a precedence policy; print the contract's."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml

from llmbilling.config.policy import load_policy

policy_app = typer.Typer(help="Validate and show precedence policies.", no_args_is_help=True)


@policy_app.command("check")
def check(path: Annotated[Path, typer.Argument(help="Policy YAML file to validate.")]) -> None:
    """Validate a policy file; print its chain, or one line naming file, path and problem."""
    policy = load_policy(path)
    chain = " → ".join(rung.value for rung in policy.rungs)
    typer.echo(f"{path}: ok — {chain}, version {policy.version}")


@policy_app.command("show")
def show(
    path: Annotated[
        Path | None, typer.Argument(help="Policy file (default: the contract's policy).")
    ] = None,
) -> None:
    """Print a policy (by default the contract's) as YAML, with its version."""
    policy = load_policy(path)
    typer.echo(f"# version {policy.version}")
    typer.echo(yaml.safe_dump(policy.to_document(), sort_keys=False).rstrip())
