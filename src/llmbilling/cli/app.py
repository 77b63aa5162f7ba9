"""The ``llmbilling`` console script: the root Typer app and its error boundary."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import import_module
from types import MappingProxyType

import typer

# Typer vendors click; its usage-error base class is only reachable here. Pinned in the lock file.
from typer._click import Command, Context, HelpFormatter
from typer._click.exceptions import ClickException
from typer.core import TyperCommand, TyperGroup

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


@dataclass(frozen=True, slots=True)
class LazyCommand:
    """A top-level command imported only when it runs: ``attribute`` of
    ``llmbilling.cli.<module>`` is a Typer app (a command group) or a command function.
    ``help`` is the line ``llmbilling --help`` lists (the command's own first help line)."""

    module: str
    attribute: str
    help: str

    def load(self, name: str) -> Command:
        target = getattr(import_module(f"llmbilling.cli.{self.module}"), self.attribute)
        # Built as a member of a throwaway root, as add_typer/command would have built it.
        root = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        if isinstance(target, typer.Typer):
            root.add_typer(target, name=name)
        else:
            root.command(name)(target)
        return typer.main.get_group(root).commands[name]


# Each command's module imports what it needs (the web stack, the database layer) when it
# runs, so `llmbilling resolve` and `--help` start without them (bench/cli_startup.py).
COMMANDS: Mapping[str, LazyCommand] = MappingProxyType(
    {
        "resolve": LazyCommand(
            "resolve_command",
            "resolve",
            "Decide the billing mode of one workspace and explain it, or of every line of a batch.",
        ),
        "explain": LazyCommand(
            "explain_command",
            "explain_file",
            "Explain the decision of each workspace in FILE (same line format as resolve --batch).",
        ),
        "registry": LazyCommand(
            "registry_commands", "registry_app", "Validate and query provider registries."
        ),
        "policy": LazyCommand(
            "policy_commands", "policy_app", "Validate and show precedence policies."
        ),
        "org": LazyCommand("admin", "org_app", "Organizations and their default billing mode."),
        "workspace": LazyCommand(
            "admin", "workspace_app", "Workspaces, their overrides and their decisions."
        ),
        "secrets": LazyCommand(
            "secrets_commands",
            "secrets_app",
            "Org- and workspace-scope secrets (values encrypted at rest, never shown).",
        ),
        "db": LazyCommand("store_commands", "db_app", "The database schema."),
        "demo": LazyCommand(
            "store_commands", "demo_app", "Synthetic data for demos and benchmarks."
        ),
        "provision-env": LazyCommand(
            "provision_command",
            "provision_env",
            "Resolve, strip and inject (spec §4), record the decision, and print the env.",
        ),
        "whatif": LazyCommand(
            "whatif_command",
            "whatif",
            "Preview every workspace's decision under a proposed policy and/or registry.",
        ),
        "serve": LazyCommand(
            "serve_command",
            "serve",
            "Serve the admin API until interrupted (logs: JSON lines on stderr).",
        ),
        "token": LazyCommand("token_commands", "token_app", "Bearer tokens of the admin API."),
        "plan": LazyCommand(
            "plan_commands",
            "plan_app",
            "Change plans: show, approve and apply what a --preview stored.",
        ),
    }
)
_LISTING = "llmbilling.listing_commands"


class LazyGroup(TyperGroup):
    """The root group over :data:`COMMANDS`: listing them for ``--help`` imports none; running
    one imports its module only."""

    def list_commands(self, ctx: Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        if ctx.meta.get(_LISTING):
            return TyperCommand(cmd_name, help=entry.help, short_help=entry.help)
        return entry.load(cmd_name)

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        with _listing(ctx):
            super().format_help(ctx, formatter)


@contextmanager
def _listing(ctx: Context) -> Iterator[None]:
    ctx.meta[_LISTING] = True
    try:
        yield
    finally:
        ctx.meta[_LISTING] = False


app = typer.Typer(
    name="llmbilling",
    help="Decide who pays for a workspace's LLM calls, and explain why.",
    cls=LazyGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    # A callback makes Typer build the root as a group (LazyGroup) with no command of its own.
    pass


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
