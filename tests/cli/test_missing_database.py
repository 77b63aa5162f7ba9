"""A mistyped SQLite path is an error naming it, never a new database: only ``db upgrade`` and
``serve --demo`` create one (every other command, reads and writes alike, opens an existing
file read-write)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from tests.cli.cli_runner import SCRIPT
from tests.environment import clean_environ

from llmbilling.store.crypto import KeyRing

ID = "6a1f0c7e-0000-4000-8000-000000000000"
STORE_EXIT = 7  # the StoreError family (docs/STORAGE.md)

# Every command that opens the store, with the arguments it needs to get that far.
STORE_COMMANDS = [
    ["workspace", "show", ID],
    ["workspace", "list"],
    ["workspace", "create", "--org", ID],
    ["workspace", "set-override", ID, "byok"],
    ["workspace", "clear-override", ID],
    ["org", "show", ID],
    ["org", "create", "acme"],
    ["org", "set-default", ID, "byok"],
    ["secrets", "list", "--org", ID],
    ["secrets", "set", "OPENAI_API_KEY", "--org", ID],
    ["secrets", "rotate"],
    ["token", "list"],
    ["token", "create", "--scope", "admin"],
    ["token", "revoke", ID],
    ["provision-env", ID],
    ["whatif", "--policy", "POLICY"],
    ["db", "current"],
    ["demo", "seed", "--workspaces", "1"],
    ["serve", "--port", "PORT"],
]


def _run(folder: Path, arguments: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *arguments],
        input="sk-value\n",
        capture_output=True,
        text=True,
        env={**clean_environ(), "LLMBILLING_SECRET_KEYS": KeyRing.new_key_text(1)},
        cwd=folder,
        check=False,
        timeout=60,
    )


def _free_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


@pytest.mark.parametrize("arguments", STORE_COMMANDS, ids=" ".join)
def test_a_command_on_a_missing_sqlite_file_fails_in_one_line_naming_the_path_and_creates_nothing(
    tmp_path: Path, arguments: list[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(_run(tmp_path, ["policy", "show"]).stdout)
    path = tmp_path / "typo" / "missing.sqlite3"
    given = [
        {"POLICY": str(policy), "PORT": _free_port()}.get(argument, argument)
        for argument in arguments
    ]

    result = _run(tmp_path, [*given, "--database-url", f"sqlite:///{path}"])

    assert result.returncode == STORE_EXIT
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(
        f"llmbilling: error: DATABASE_NOT_FOUND: no database at '{path}';"
    )
    assert f"llmbilling db upgrade --database-url sqlite:///{path}" in result.stderr
    assert not path.parent.exists()


def test_a_relative_path_is_named_as_given(tmp_path: Path) -> None:
    result = _run(tmp_path, ["workspace", "list", "--database-url", "sqlite:///llmbiling.db"])

    assert "no database at 'llmbiling.db'" in result.stderr
    assert not (tmp_path / "llmbiling.db").exists()


def test_db_upgrade_creates_the_file_and_its_folder_then_reads_work(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'store.sqlite3'}"

    upgraded = _run(tmp_path, ["db", "upgrade", "--database-url", url])
    listed = _run(tmp_path, ["workspace", "list", "--json", "--database-url", url])

    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "new" / "store.sqlite3").is_file()
    assert (listed.returncode, listed.stdout.strip()) == (0, "[]")


def test_serve_demo_creates_a_missing_demo_database(tmp_path: Path) -> None:
    path = tmp_path / "demo" / "demo.sqlite3"
    server = subprocess.Popen(
        [
            str(SCRIPT),
            "serve",
            "--demo",
            "--port",
            _free_port(),
            "--database-url",
            f"sqlite:///{path}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**clean_environ(), "LLMBILLING_SECRET_KEYS": KeyRing.new_key_text(1)},
        cwd=tmp_path,
    )
    try:
        assert server.stdout is not None
        first_line = server.stdout.readline()
    finally:
        server.terminate()
        server.wait(timeout=30)

    assert first_line.startswith("console: http://127.0.0.1:")
    assert path.is_file()
