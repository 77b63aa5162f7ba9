"""The ``llmbilling`` console script: the root Typer app and its error boundary."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from types import MappingProxyType

import typer

# Typer vendors click; its usage-error base class is only reachable here. Pinned in the lock file.
from typer._click.exceptions import ClickException

from llmbilling.cli import (
    admin,
    explain_command,
    policy_commands,
    registry_commands,
    resolve_command,
    serve_command,
    token_commands,
    whatif_command,
)
from llmbilling.errors import (
    InvalidInputError,
    LlmBillingError,
    MissingByokCredentialError,
    MissingModelError,
    MissingPlatformProxyError,
    NotFoundError,
    SchemaNotCurrentError,
    SecretsError,
    StoreError,
)

USAGE_EXIT_CODE = 2

app = typer.Typer(
    name="llmbilling",
    help="Decide who pays for a workspace's LLM calls, and explain why.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("resolve")(resolve_command.resolve)
app.command("explain")(explain_command.explain_file)
app.add_typer(registry_commands.registry_app, name="registry")
app.add_typer(policy_commands.policy_app, name="policy")
admin.register(app)
app.command("whatif")(whatif_command.whatif)
app.command("serve")(serve_command.serve)
app.add_typer(token_commands.token_app, name="token")


# The exit status of each error family, and of the members that exit otherwise (the table in
# docs/STORAGE.md). An error exits with the status of the first class along its MRO listed
# here, so a new member of a family exits as its family does. 10 is the what-if's "a danger
# class is non-empty", which is no error.
EXIT_CODES: Mapping[type[LlmBillingError], int] = MappingProxyType(
    {
        # Anything not more specific (e.g. ALREADY_EXISTS, PRECONDITION_FAILED).
        LlmBillingError: 1,
        # Bad flags and values, and registry/policy files that are not valid.
        InvalidInputError: USAGE_EXIT_CODE,
        MissingModelError: 3,
        MissingPlatformProxyError: 4,
        MissingByokCredentialError: 5,
        NotFoundError: 6,
        # STORE_UNAVAILABLE, and any other store fault not more specific.
        StoreError: 7,
        SchemaNotCurrentError: 8,
        SecretsError: 9,
    }
)


def exit_code_for(error: LlmBillingError | type[LlmBillingError]) -> int:
    """The exit status of a typed error: its nearest class in :data:`EXIT_CODES`."""
    error_type = error if isinstance(error, type) else type(error)
    return next(EXIT_CODES[cls] for cls in error_type.__mro__ if cls in EXIT_CODES)


def main() -> None:
    """Run the CLI; every expected failure is one line on stderr and a non-zero exit."""
    try:
        _check_utf8(sys.argv[1:])
        result = app(standalone_mode=False)
    except LlmBillingError as error:
        _fail(f"{error.code}: {error.message}", exit_code_for(error))
    except ClickException as error:
        _fail(error.format_message(), USAGE_EXIT_CODE)
    except typer.Abort:
        _fail("aborted", 130)
    sys.exit(result if isinstance(result, int) else 0)


def _check_utf8(arguments: list[str]) -> None:
    """Refuse arguments that were not valid UTF-8 bytes (Python keeps such bytes as lone
    surrogates, which no database driver and no JSON encoder accepts)."""
    for position, argument in enumerate(arguments, start=1):
        if not is_utf8(argument):
            raise InvalidInputError(f"argument {position}", "is not valid UTF-8")


def is_utf8(text: str) -> bool:
    """False when ``text`` holds a lone surrogate (undecodable input kept by Python)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _fail(message: str, exit_code: int) -> None:
    one_line = " ".join(message.split())
    print(f"llmbilling: error: {one_line}", file=sys.stderr)
    sys.exit(exit_code)
