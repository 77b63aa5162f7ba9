"""``llmbilling provision-env WORKSPACE_ID``: the env a workspace's container starts with.

The env holds secret values by design (it is what the container needs); it goes to stdout
only. Warnings, the flip notice and errors go to stderr and name env vars, never values.
"""

from __future__ import annotations

import json
import re
import shlex
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
from llmbilling.errors import EnvValueUnrepresentableError
from llmbilling.service.provision import ProvisionResult, provision_workspace


class EnvFormat(StrEnum):
    """The output formats. ``shell`` is for ``set -a; . FILE`` (POSIX single quotes);
    ``env-file`` is for ``docker run --env-file`` (raw ``NAME=value``: docker strips and
    unquotes nothing). There is no ``dotenv``: the dotenv dialects (python-dotenv, Compose)
    disagree with both on quotes, ``$`` and ``#`` (docs/DECISIONS.md)."""

    JSON = "json"
    SHELL = "shell"
    ENV_FILE = "env-file"
    K8S = "k8s"


# What a format cannot carry unchanged, as (character, how the error names it). A shell
# variable ends at NUL (so does every process env); docker reads its env file line by line,
# dropping one CR before each newline.
_NUL = ("\x00", "a NUL character")
_NOT_CARRIED: Mapping[EnvFormat, tuple[tuple[str, str], ...]] = {
    EnvFormat.JSON: (),
    EnvFormat.K8S: (),
    EnvFormat.SHELL: (_NUL,),
    EnvFormat.ENV_FILE: (("\n", "a newline"), ("\r", "a carriage return"), _NUL),
}
# Docker reads env-file lines with Go's bufio.Scanner, which fails on a line of 64 KiB or more.
ENV_FILE_MAX_LINE_BYTES = 64 * 1024 - 1
# Both text formats write the name bare, so it must be a plain identifier.
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def provision_env(
    workspace_id: Annotated[str, typer.Argument(help="Workspace id (UUID).")],
    output_format: Annotated[
        EnvFormat,
        typer.Option(
            "--format",
            help=(
                "json (summary and env); shell: NAME='value' lines to source with"
                " `set -a; . FILE; set +a`; env-file: raw NAME=value lines for"
                " `docker run --env-file` (no quoting: refuses newline, CR and NUL);"
                " k8s: a Secret manifest."
            ),
        ),
    ] = EnvFormat.JSON,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Model of this request (persisted to the workspace)."),
    ] = None,
    actor: ActorOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Resolve, strip and inject (spec §4), record the decision, and print the env.

    A value the format cannot carry unchanged is ENV_VALUE_UNREPRESENTABLE (exit 2), naming
    the variable; then nothing is printed and nothing is recorded.
    """
    with service_context(database_url) as context:
        result = provision_workspace(
            context,
            workspace_id,
            request_model=model,
            audit_context=audit_context(actor),
            check_env=lambda env: check_representable(env, output_format),
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


def check_representable(env: Mapping[str, str], output_format: EnvFormat) -> None:
    """Raise :class:`EnvValueUnrepresentableError` for the first variable (in env order) that
    ``output_format`` cannot carry byte for byte; the error never holds the value."""
    for name, value in env.items():
        problem = _unrepresentable(name, value, output_format)
        if problem is not None:
            carried_by = [
                other.value
                for other in EnvFormat
                if other is not output_format and _unrepresentable(name, value, other) is None
            ]
            raise EnvValueUnrepresentableError(name, output_format.value, problem, carried_by)


def _unrepresentable(name: str, value: str, output_format: EnvFormat) -> str | None:
    if output_format in (EnvFormat.SHELL, EnvFormat.ENV_FILE) and not _PLAIN_NAME.match(name):
        return "a name that is not a plain identifier"
    for character, described in _NOT_CARRIED[output_format]:
        if character in value:
            return described
    too_long = len(f"{name}={value}".encode()) > ENV_FILE_MAX_LINE_BYTES
    if output_format is EnvFormat.ENV_FILE and too_long:
        return f"a line longer than docker reads ({ENV_FILE_MAX_LINE_BYTES} bytes)"
    return None


def render(result: ProvisionResult, output_format: EnvFormat) -> str:
    """The env in ``output_format``; values must have passed :func:`check_representable`."""
    env = result.provision.env
    if output_format is EnvFormat.JSON:
        return json.dumps({**result.public_summary(), "env": dict(env)}, indent=2) + "\n"
    if output_format is EnvFormat.SHELL:
        return "".join(f"{name}={shlex.quote(value)}\n" for name, value in env.items())
    if output_format is EnvFormat.ENV_FILE:
        return "".join(f"{name}={value}\n" for name, value in env.items())
    return _k8s_secret(result, env)


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
