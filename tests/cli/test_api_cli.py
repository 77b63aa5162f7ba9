"""``llmbilling token …`` and ``llmbilling serve --demo`` through the real console script."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Demo:
    console_line: str
    token: str
    base: str
    guide: list[str]  # the lines after the token's, up to the metering proxy's


@contextmanager
def _serving_demo(cli: Cli) -> Iterator[Demo]:
    """Runs ``serve --demo`` until the block ends; yields what it printed and its base URL."""
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
        guide = [server.stdout.readline().rstrip("\n")]
        while not guide[-1].startswith("metering proxy:"):
            guide.append(server.stdout.readline().rstrip("\n"))
        base = f"http://127.0.0.1:{port}"
        _wait_until_ready(base)
        yield Demo(console_line, token, base, guide)
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


def _status(url: str, token: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _get(url: str, token: str) -> object:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def test_serve_demo_seeds_an_empty_store_once_and_reuses_one_admin_token_across_starts(
    cli: Cli,
) -> None:
    with _serving_demo(cli) as first:
        assert first.console_line == f"console: {first.base}/console/"
        token = first.token
        assert token.startswith("llmb_")
        entries = _get(f"{first.base}/v1/audit?limit=500", token)
    with _serving_demo(cli) as second:
        assert second.token == token

    assert isinstance(entries, dict)
    assert [e["action"] for e in entries["items"]] == ["token.created", "demo.seeded"]
    assert len(cli.json("workspace", "list", "--limit", "1000")) == 200
    assert [t["name"] for t in cli.json("token", "list")] == ["demo"]
    kept = cli.folder / "store.sqlite3.demo-token"
    assert kept.read_text().strip() == token
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600


def test_serve_demo_mints_a_new_token_and_revokes_the_old_when_the_kept_file_is_gone(
    cli: Cli,
) -> None:
    with _serving_demo(cli) as first:
        pass
    (cli.folder / "store.sqlite3.demo-token").unlink()
    with _serving_demo(cli) as second:
        assert second.token != first.token
        assert _status(f"{second.base}/v1/audit", first.token) == 401

    assert [t["revoked_at"] is None for t in cli.json("token", "list")] == [False, True]


@pytest.mark.parametrize(
    ("proxy", "expected"),
    [
        (
            {},
            "metering proxy: not configured — platform_managed workspaces will fail provisioning"
            " with MISSING_PLATFORM_PROXY; set MOLECULE_LLM_BASE_URL and MOLECULE_LLM_USAGE_TOKEN",
        ),
        (
            {
                "MOLECULE_LLM_BASE_URL": "https://user:pw@proxy.example/v1?k=s",
                "MOLECULE_LLM_USAGE_TOKEN": "usage-token-value",
            },
            "metering proxy: configured at https://proxy.example/v1",
        ),
    ],
)
def test_serve_demo_says_what_to_do_next_and_whether_a_metering_proxy_is_configured(
    cli: Cli, proxy: dict[str, str], expected: str
) -> None:
    cli.proxy = proxy
    with _serving_demo(cli) as demo:
        pass
    login, curl, proxy_line = demo.guide
    assert "log in to the console with it" in login
    assert curl.startswith(
        f"try: curl -H 'Authorization: Bearer {demo.token}' {demo.base}/v1/workspaces/"
    )
    assert proxy_line == expected
    assert "usage-token-value" not in "\n".join(demo.guide)
