"""The console script imports a command's module only when that command runs: ``--help`` and
``resolve`` start without the web stack and the database layer."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer
from tests.environment import clean_environ

from llmbilling.cli.app import COMMANDS, LazyGroup, app

HEAVY = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "psycopg", "alembic")
_PROBE = """
import json, sys
sys.argv = ["llmbilling", *json.loads(sys.argv[1])]
from llmbilling.cli.app import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})), file=sys.stderr)
"""


def _imported_by(arguments: list[str]) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(arguments)],
        capture_output=True,
        text=True,
        env=clean_environ(),
        check=False,
        timeout=60,
    )
    return set(json.loads(result.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "arguments",
    [
        ["--help"],
        ["resolve", "--help"],
        ["resolve", "--runtime", "claude-code", "--model", "opus", "--json"],
        ["explain", "--help"],
        ["policy", "show"],
    ],
)
def test_a_command_that_needs_no_store_imports_neither_the_web_stack_nor_the_database_layer(
    arguments: list[str],
) -> None:
    assert _imported_by(arguments).isdisjoint(HEAVY)


def test_a_store_command_still_loads_its_module_when_it_runs() -> None:
    assert "sqlalchemy" in _imported_by(["workspace", "show", "--help"])


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_root_help_lists_each_command_with_its_own_first_help_line(name: str) -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, LazyGroup)
    with group.make_context("llmbilling", [name]) as context:
        real = group.get_command(context, name)
    assert real is not None
    assert real.get_short_help_str(limit=500) == COMMANDS[name].help
