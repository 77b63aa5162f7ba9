"""``llmbilling provision-env WORKSPACE_ID``: the env a workspace's container starts with.

The env holds secret values by design (it is what the container needs); it goes to stdout
only. Warnings, the flip notice and errors go to stderr and name env vars, never values.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated

import typer
import yaml

from llmbilling.cli.store_options import (
    ActorOption,
    DatabaseUrlOption,
    audit_context,
    service_context,
)
from llmbilling.service.provision import ProvisionResult, provision_workspace

_DOTENV_SAFE = re.compile(r"^[A-Za-z0-9_./:@,+=-]*$")


class EnvFormat(StrEnum):
    JSON = "json"
    DOTENV = "dotenv"
    K8S = "k8s"


def provision_env(
    workspace_id: Annotated[str, typer.Argument(help="Workspace id (UUID).")],
    output_format: Annotated[
        EnvFormat, typer.Option("--format", help="json, dotenv, or a k8s Secret manifest.")
    ] = EnvFormat.JSON,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Model of this request (persisted to the workspace)."),
    ] = None,
    actor: ActorOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Resolve, strip and inject (spec §4), record the decision, and print the env."""
    with service_context(database_url) as context:
        result = provision_workspace(
            context, workspace_id, request_model=model, audit_context=audit_context(actor)
        )
    for warning in result.provision.warnings:
        print(f"llmbilling: warning: {warning}", file=sys.stderr)
    if result.flipped_from is not None:
        print(
            f"llmbilling: billing mode flipped from {result.flipped_from.value}"
            f" to {result.provision.decision.mode.value}",
            file=sys.stderr,
        )
    sys.stdout.write(render(result, output_format))


def render(result: ProvisionResult, output_format: EnvFormat) -> str:
    env = result.provision.env
    if output_format is EnvFormat.JSON:
        return json.dumps({**result.public_summary(), "env": dict(env)}, indent=2) + "\n"
    if output_format is EnvFormat.DOTENV:
        return "".join(f"{name}={_dotenv_value(value)}\n" for name, value in env.items())
    return _k8s_secret(result, env)


def _dotenv_value(value: str) -> str:
    if _DOTENV_SAFE.match(value):
        return value
    escaped = (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("\n", "\\n")
    )
    return f'"{escaped}"'


def _k8s_secret(result: ProvisionResult, env: Mapping[str, str]) -> str:
    decision = result.provision.decision
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": f"llmbilling-env-{decision.workspace_id}",
            "labels": {"llmbilling/billing-mode": decision.mode.value},
            "annotations": {
                "llmbilling/workspace-id": str(decision.workspace_id),
                "llmbilling/billing-source": decision.source.value,
                "llmbilling/provision-id": str(result.provision_id),
            },
        },
        "stringData": dict(env),
    }
    return yaml.safe_dump(manifest, sort_keys=False)
