"""``llmbilling token …`` and ``llmbilling serve --demo`` through the real console script."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tests.cli.cli_runner import SCRIPT, Cli

STARTUP_DEADLINE_SECONDS = 60


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def test_token_create_prints_the_token_alone_and_list_never_shows_it(cli: Cli) -> None:
    org_id = cli.ok("org", "create", "acme").strip()

    token = cli.ok("token", "create", "--scope", "viewer", "--org", org_id, "--name", "dash")
    listed = cli.json("token", "list")

    assert token.startswith("llmb_")
    assert token.count("\n") == 1
    assert [(t["scope"], t["org_id"], t["name"]) for t in listed] == [("viewer", org_id, "dash")]
    assert token.strip() not in json.dumps(listed)


def test_token_revoke_marks_the_token_revoked(cli: Cli) -> None:
    created = cli.json("token", "create", "--scope", "admin")

    cli.ok("token", "revoke", created["id"])

    (listed,) = cli.json("token", "list")
    assert listed["revoked_at"] is not None


@pytest.mark.parametrize(
    ("arguments", "exit_code", "code"),
    [
        (["token", "create", "--scope", "owner"], 2, "INVALID_INPUT"),
        (["token", "create", "--scope", "viewer"], 2, "INVALID_INPUT"),
        (
            [
                "token",
                "create",
                "--scope",
                "viewer",
                "--org",
                "6a1f0c7e-0000-4000-8000-000000000000",
            ],
            6,
            "ORG_NOT_FOUND",
        ),
        (["token", "revoke", "6a1f0c7e-0000-4000-8000-000000000000"], 6, "TOKEN_NOT_FOUND"),
    ],
)
def test_token_errors_are_typed(cli: Cli, arguments: list[str], exit_code: int, code: str) -> None:
    result = cli.run(*arguments)

    assert result.returncode == exit_code
    assert f"error: {code}: " in result.stderr


def test_demo_refuses_a_postgresql_store(cli: Cli) -> None:
    result = cli.run("serve", "--demo", "--database-url", "postgresql://nobody@127.0.0.1:1/x")

    assert result.returncode == 2
    assert "INVALID_INPUT" in result.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _serving_demo(cli: Cli) -> Iterator[tuple[str, str, str]]:
    """Runs ``serve --demo`` until the block ends; yields (console line, token, base URL)."""
    port = _free_port()
    server = subprocess.Popen(
        [str(SCRIPT), "serve", "--demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=cli.env(),
        cwd=cli.folder,
    )
    try:
        assert server.stdout is not None
        console_line = server.stdout.readline().strip()
        token = server.stdout.readline().strip().removeprefix("admin token: ")
        base = f"http://127.0.0.1:{port}"
        _wait_until_ready(base)
        yield console_line, token, base
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_until_ready(base: str) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    while True:
        try:
            with urllib.request.urlopen(f"{base}/readyz") as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def _get(url: str, token: str) -> object:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def test_serve_demo_seeds_an_empty_store_once_and_prints_the_console_and_a_token(
    cli: Cli,
) -> None:
    with _serving_demo(cli) as (console_line, token, base):
        assert console_line == f"console: {base}/console/"
        assert token.startswith("llmb_")
        entries = _get(f"{base}/v1/audit?limit=500", token)
    with _serving_demo(cli) as (_, second_token, base):
        assert second_token != token

    assert isinstance(entries, dict)
    assert [e["action"] for e in entries["items"]] == ["token.created", "demo.seeded"]
    assert len(cli.json("workspace", "list", "--limit", "1000")) == 200
    assert [t["name"] for t in cli.json("token", "list")] == ["demo", "demo"]
