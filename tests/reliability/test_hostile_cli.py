"""Hostile path and id arguments, and input that is not UTF-8, through the CLI: one line on
stderr, exit 2, nothing stored, nothing echoed.

Traversals, absolute paths, a directory and a secret file as policy, registry, explain and
what-if paths, an unwritable ``--out``, a database URL inside a file, SQL as ids and a
traversal as a secret name; non-UTF-8 org names, actors, models and secret values; a NUL byte
in a path setting of a ``.env`` file (argv and the environment cannot carry one). The secret
file is never echoed or changed, and a NUL in the registry path fails closed
(``registry_unavailable``) instead of crashing. Run in-process through the console script's
entry point (``main``), plus once through the real executable. Harness:
``tests/reliability/hostile_harness.py``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.cli.cli_runner import Cli
from tests.reliability.hostile_harness import (
    HOSTILE,
    POLICY,
    SECRET_LINE,
    SQL,
    SQL_ID,
    CliStore,
    run_cli,
    tally_printed_at_the_end,
    up_to_root,
)
from tests.store.db_fixtures import SAAS_PROXY

from llmbilling.config.registry import built_in_registry
from llmbilling.service import admin
from llmbilling.service.context import DeploymentInputs, ServiceContext
from llmbilling.store import migrate
from llmbilling.store.crypto import KeyRing
from llmbilling.store.engine import open_store


@pytest.fixture(scope="module", autouse=True)
def _print_tally() -> Iterator[None]:
    yield from tally_printed_at_the_end("the CLI")


@pytest.fixture(scope="module")
def cli_store(tmp_path_factory: pytest.TempPathFactory) -> CliStore:
    folder = tmp_path_factory.mktemp("hostile-cli")
    database_url = f"sqlite:///{folder / 'store.sqlite3'}"
    key_ring = KeyRing.new_key_text(1)
    with ServiceContext(
        open_store(database_url),
        DeploymentInputs(proxy=SAAS_PROXY, org_default=None),
        built_in_registry(),
        key_ring_loader=lambda: KeyRing.parse(key_ring),
    ) as context:
        migrate.upgrade(context.store)
        org_id = str(admin.create_org(context, "acme").id)
    secret = folder / "secret.txt"
    secret.write_text(SECRET_LINE)
    (folder / "policy.yaml").write_text(json.dumps(POLICY))
    return CliStore(folder, database_url, key_ring, org_id, secret)


CLI_ATTACKS = [
    ("policy", "check", "{up}etc/passwd"),
    ("registry", "check", "/etc/passwd"),
    ("registry", "check", "/etc"),
    ("registry", "check", "{secret}"),
    ("policy", "check", "/no/such/../../file"),
    ("explain", "{up}etc/passwd"),
    ("explain", "{secret}"),
    ("whatif", "--policy", "{secret}"),
    ("whatif", "--registry", "{up}etc/passwd"),
    ("whatif", "--policy", "{policy}", "--out", "{secret}"),
    ("whatif", "--policy", "{policy}", "--out", "/dev/null/report"),
    ("workspace", "list", "--database-url", "sqlite:///{secret}/store.sqlite3"),
    ("workspace", "show", SQL),
    ("org", "set-default", SQL_ID, "byok"),
    ("secrets", "set", "../../etc/passwd", "--org", "{org}"),
]
# Bad input exits 2; a database path under a file is no database (DATABASE_NOT_FOUND, a store
# error): nothing but `db upgrade` and `serve --demo` would create one there.
ATTACK_EXIT_CODES: dict[tuple[str, ...], int] = {
    ("workspace", "list", "--database-url", "sqlite:///{secret}/store.sqlite3"): 7
}


@pytest.mark.parametrize("args", CLI_ATTACKS, ids=[" ".join(args) for args in CLI_ATTACKS])
def test_cli_path_and_id_arguments_fail_in_one_line_storing_and_echoing_nothing(
    cli_store: CliStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
) -> None:
    digest = hashlib.sha256(cli_store.secret.read_bytes()).hexdigest()
    before = cli_store.rows()
    argv = [
        arg.replace("{up}", up_to_root(cli_store.folder))
        .replace("{secret}", str(cli_store.secret))
        .replace("{policy}", str(cli_store.folder / "policy.yaml"))
        .replace("{org}", cli_store.org_id)
        for arg in args
    ]
    env = {
        "LLMBILLING_DATABASE_URL": cli_store.database_url,
        "LLMBILLING_SECRET_KEYS": cli_store.key_ring,
    }

    result = run_cli(monkeypatch, capsys, cli_store.folder, env, *argv)

    assert result.exit_code == ATTACK_EXIT_CODES.get(args, 2), result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("llmbilling: error: ")
    for text in (result.stdout, result.stderr):
        assert HOSTILE not in text
        assert "root:x" not in text
    assert cli_store.rows() == before
    assert hashlib.sha256(cli_store.secret.read_bytes()).hexdigest() == digest


# Bytes that are not UTF-8 reach Python as lone surrogates (surrogateescape).
NOT_UTF8 = b"acme\xff".decode("utf-8", "surrogateescape")
NOT_UTF8_ATTACKS = [
    (("org", "create", NOT_UTF8), "value\n"),
    (("org", "create", "acme", "--actor", NOT_UTF8), "value\n"),
    (("workspace", "create", "--org", "{org}", "--model", NOT_UTF8), "value\n"),
    (("secrets", "set", "OPENAI_API_KEY", "--org", "{org}"), f"sk-{HOSTILE}-{NOT_UTF8}\n"),
]


@pytest.mark.parametrize(
    ("args", "stdin"),
    NOT_UTF8_ATTACKS,
    ids=["org name", "actor", "workspace model", "secret value on stdin"],
)
def test_cli_input_that_is_not_utf8_fails_in_one_line_storing_nothing(
    cli_store: CliStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    stdin: str,
) -> None:
    before = cli_store.rows()
    env = {
        "LLMBILLING_DATABASE_URL": cli_store.database_url,
        "LLMBILLING_SECRET_KEYS": cli_store.key_ring,
    }
    argv = [arg.replace("{org}", cli_store.org_id) for arg in args]

    result = run_cli(monkeypatch, capsys, cli_store.folder, env, *argv, stdin=stdin)

    assert result.exit_code == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("llmbilling: error: INVALID_INPUT: ")
    assert HOSTILE not in result.stdout + result.stderr
    assert cli_store.rows() == before


def test_the_console_script_answers_a_traversal_in_one_line(tmp_path: Path) -> None:
    """The same boundary through the real executable (a separate process)."""
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET_LINE)
    result = Cli(tmp_path).run("registry", "check", up_to_root(tmp_path) + str(secret)[1:])
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("llmbilling: error: REGISTRY_INVALID: ")
    assert HOSTILE not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("LLMBILLING_POLICY_PATH", "policy.yaml\x00../../etc/passwd"),
        ("LLMBILLING_DATABASE_URL", "sqlite:///store.sqlite3\x00../../etc/passwd"),
        ("LLMBILLING_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/prod\x00_test"),
    ],
    ids=["policy path", "sqlite url", "postgresql url"],
)
def test_cli_refuses_a_nul_byte_in_a_path_setting_in_one_line(
    cli_store: CliStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    setting: str,
    value: str,
) -> None:
    """argv and the environment cannot carry NUL, but a ``.env`` file can."""
    (tmp_path / ".env").write_bytes(f"{setting}={value}\n".encode())
    env = {
        "LLMBILLING_DATABASE_URL": cli_store.database_url,
        "LLMBILLING_SECRET_KEYS": cli_store.key_ring,
    }
    env.pop(setting, None)

    result = run_cli(monkeypatch, capsys, tmp_path, env, "workspace", "list")

    assert result.exit_code == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("llmbilling: error: ")


def test_a_nul_byte_in_the_registry_path_fails_closed(
    cli_store: CliStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An unloadable registry is an operational fault: decisions fall to the deployment
    default (``registry_unavailable``) instead of the command crashing."""
    with ServiceContext(
        open_store(cli_store.database_url),
        DeploymentInputs(proxy=SAAS_PROXY, org_default=None),
        built_in_registry(),
        key_ring_loader=lambda: KeyRing.parse(cli_store.key_ring),
    ) as context:
        workspace = admin.create_workspace(
            context, cli_store.org_id, runtime="codex", model="gpt-5.5"
        )
    (tmp_path / ".env").write_bytes(b"LLMBILLING_REGISTRY_PATH=registry.yaml\x00x\n")
    env = {
        "LLMBILLING_DATABASE_URL": cli_store.database_url,
        "LLMBILLING_SECRET_KEYS": cli_store.key_ring,
        "MOLECULE_LLM_BASE_URL": "https://proxy.test/v1",
        "MOLECULE_LLM_USAGE_TOKEN": "usage-token",
    }

    result = run_cli(
        monkeypatch, capsys, tmp_path, env, "workspace", "show", str(workspace.id), "--json"
    )

    assert result.exit_code == 0, result.stderr
    decision = json.loads(result.stdout)["decision"]
    assert (decision["mode"], decision["source"]) == ("platform_managed", "derived_default")
    assert decision["derivation"]["outcome"] == "registry_unavailable"
