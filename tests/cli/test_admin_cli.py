"""The admin commands through the real console script, on a temp SQLite file and key ring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from tests.cli.cli_runner import SENTINEL, Cli

from llmbilling.config.registry import built_in_registry
from llmbilling.store import migrate
from llmbilling.store.crypto import KeyRing


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def test_org_create_show_and_set_default(cli: Cli) -> None:
    org_id = cli.ok("org", "create", "acme", "--default", "  BYOK ").strip()
    shown = cli.json("org", "show", org_id)
    assert shown["llm_billing_mode_default"] == {"raw": "  BYOK ", "recognized": "byok"}

    cli.ok("org", "set-default", org_id, "disabled")
    assert cli.json("org", "show", org_id)["llm_billing_mode_default"]["recognized"] == "disabled"
    cli.ok("org", "set-default", org_id, "--clear")
    assert cli.json("org", "show", org_id)["llm_billing_mode_default"]["raw"] is None


def test_workspace_lifecycle_and_filtered_listing(cli: Cli) -> None:
    org_id = cli.ok("org", "create", "acme", "--default", "byok").strip()
    pinned = cli.ok("workspace", "create", "--org", org_id, "--model", "gpt-5.5").strip()
    other = cli.ok("workspace", "create", "--org", org_id, "--runtime", "codex").strip()

    cli.ok("workspace", "set-override", pinned, "disabled")
    shown = cli.json("workspace", "show", pinned)
    assert shown["workspace"]["llm_billing_mode"] == "disabled"
    assert (shown["decision"]["mode"], shown["decision"]["source"]) == (
        "disabled",
        "workspace_override",
    )
    listed = cli.json("workspace", "list", "--org", org_id, "--mode", "disabled")
    assert [w["id"] for w in listed] == [pinned]

    cli.ok("workspace", "clear-override", pinned)
    listed = cli.json("workspace", "list", "--org", org_id, "--mode", "byok")
    assert {w["id"] for w in listed} == {pinned, other}


def test_workspace_create_refuses_a_runtime_the_registry_does_not_know(cli: Cli) -> None:
    org_id = cli.ok("org", "create", "acme").strip()
    result = cli.run("workspace", "create", "--org", org_id, "--runtime", "nosuch")
    allowed = ", ".join(sorted(built_in_registry().runtimes))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "llmbilling: error: INVALID_INPUT: runtime: 'nosuch' is not a runtime of the"
        f" provider registry (allowed: {allowed})"
    ]
    assert cli.json("workspace", "list", "--org", org_id) == []


def test_workspace_create_stores_a_known_runtime_trimmed_and_lowercased(cli: Cli) -> None:
    org_id = cli.ok("org", "create", "acme").strip()
    created = cli.json("workspace", "create", "--org", org_id, "--runtime", " Claude-Code ")
    assert created["runtime"] == "claude-code"
    assert cli.json("workspace", "show", created["id"])["workspace"]["runtime"] == "claude-code"


def test_secrets_are_set_from_stdin_and_listed_without_values(cli: Cli) -> None:
    org_id = cli.ok("org", "create", "acme").strip()
    result = cli.run("secrets", "set", "OPENAI_API_KEY", "--org", org_id, stdin=SENTINEL + "\n")
    assert result.returncode == 0, result.stderr
    listed = cli.json("secrets", "list", "--org", org_id)
    assert [(s["name"], s["scope"], s["key_version"]) for s in listed] == [
        ("OPENAI_API_KEY", "org", 1)
    ]
    table = cli.ok("secrets", "list", "--org", org_id)
    assert SENTINEL not in result.stdout + result.stderr + table + json.dumps(listed)
    assert SENTINEL.encode() not in (cli.folder / "store.sqlite3").read_bytes()


def test_a_secret_value_is_never_accepted_on_the_command_line(cli: Cli) -> None:
    org_id = cli.ok("org", "create", "acme").strip()
    result = cli.run("secrets", "set", "OPENAI_API_KEY", SENTINEL, "--org", org_id)
    assert result.returncode == 2


def test_rotation_reseals_under_the_newest_key(cli: Cli) -> None:
    org_id = cli.ok("org", "create", "acme").strip()
    cli.ok("secrets", "set", "OPENAI_API_KEY", "--org", org_id, stdin="value")
    cli.key_ring = f"{cli.key_ring},{KeyRing.new_key_text(2)}"
    output = cli.ok("secrets", "rotate")
    assert "rotated 1 secret(s) to key v2" in output
    assert "0 remaining" in output
    assert cli.json("secrets", "list", "--org", org_id)[0]["key_version"] == 2


def _provisionable_workspace(cli: Cli) -> str:
    org_id = cli.ok("org", "create", "acme").strip()
    workspace_id = cli.ok("workspace", "create", "--org", org_id, "--runtime", "codex").strip()
    cli.ok("secrets", "set", "OPENAI_API_KEY", "--workspace", workspace_id, stdin="sk-x y")
    return workspace_id


def test_provision_env_prints_json_shell_env_file_and_a_k8s_secret(cli: Cli) -> None:
    workspace_id = _provisionable_workspace(cli)
    as_json = json.loads(cli.ok("provision-env", workspace_id, "--model", "gpt-5.5"))
    assert (as_json["mode"], as_json["source"], as_json["provider"]) == (
        "byok",
        "derived_provider",
        "openai",
    )
    assert as_json["env"]["OPENAI_API_KEY"] == "sk-x y"

    shell = cli.ok("provision-env", workspace_id, "--format", "shell").splitlines()
    assert "OPENAI_API_KEY='sk-x y'" in shell
    assert "MOLECULE_LLM_BILLING_SOURCE=derived_provider" in shell
    assert "MODEL=gpt-5.5" in shell  # the request model was persisted

    env_file = cli.ok("provision-env", workspace_id, "--format", "env-file").splitlines()
    assert "OPENAI_API_KEY=sk-x y" in env_file
    assert "MODEL=gpt-5.5" in env_file

    manifest = yaml.safe_load(cli.ok("provision-env", workspace_id, "--format", "k8s"))
    assert manifest["kind"] == "Secret"
    assert manifest["stringData"]["MOLECULE_LLM_BILLING_MODE"] == "byok"


def test_provision_env_reports_a_flip_on_stderr(cli: Cli) -> None:
    workspace_id = _provisionable_workspace(cli)
    cli.ok("provision-env", workspace_id, "--model", "gpt-5.5")
    cli.ok("workspace", "set-override", workspace_id, "disabled")
    result = cli.run("provision-env", workspace_id)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["flipped_from"] == "byok"
    assert "flipped from byok to disabled" in result.stderr


@pytest.mark.parametrize(
    ("setup", "code", "exit_code"),
    [
        ("no-model", "MISSING_MODEL", 3),
        ("no-proxy", "MISSING_PLATFORM_PROXY", 4),
        ("no-credential", "MISSING_BYOK_CREDENTIAL", 5),
    ],
)
def test_provision_errors_are_one_line_with_their_own_exit_codes(
    cli: Cli, setup: str, code: str, exit_code: int
) -> None:
    org_id = cli.ok("org", "create", "acme").strip()
    arguments = ["workspace", "create", "--org", org_id, "--runtime", "codex"]
    if setup == "no-proxy":
        arguments += ["--model", "platform/gpt-5.5"]
    elif setup == "no-credential":
        arguments += ["--model", "gpt-5.5"]
    workspace_id = cli.ok(*arguments).strip()
    result = cli.run("provision-env", workspace_id)
    assert result.returncode == exit_code
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"llmbilling: error: {code}: ")


def test_platform_managed_provisioning_uses_the_deployment_proxy(cli: Cli) -> None:
    cli.proxy = {
        "MOLECULE_LLM_BASE_URL": "https://proxy.example/v1",
        "MOLECULE_LLM_USAGE_TOKEN": "usage-token",
    }
    org_id = cli.ok("org", "create", "acme").strip()
    workspace_id = cli.ok(
        "workspace", "create", "--org", org_id, "--runtime", "codex", "--model", "openai/gpt-5.4"
    ).strip()
    env = json.loads(cli.ok("provision-env", workspace_id))["env"]
    assert (env["OPENAI_BASE_URL"], env["OPENAI_API_KEY"]) == (
        "https://proxy.example/v1",
        "usage-token",
    )


@pytest.mark.parametrize(
    ("arguments", "exit_code", "code"),
    [
        (["workspace", "show", "00000000-0000-4000-8000-000000000000"], 6, "WORKSPACE_NOT_FOUND"),
        (["workspace", "show", "not-a-uuid"], 2, "INVALID_INPUT"),
        (
            ["workspace", "set-override", "00000000-0000-4000-8000-000000000000", "byokk"],
            2,
            "INVALID_INPUT",
        ),
        (["org", "show", "00000000-0000-4000-8000-000000000000"], 6, "ORG_NOT_FOUND"),
    ],
)
def test_bad_ids_and_modes_are_typed_errors(
    cli: Cli, arguments: list[str], exit_code: int, code: str
) -> None:
    result = cli.run(*arguments)
    assert result.returncode == exit_code
    assert f"error: {code}: " in result.stderr


def test_db_upgrade_and_a_deterministic_demo_seed(cli: Cli, tmp_path: Path) -> None:
    assert f"revision {migrate.head_revision()}" in cli.ok("db", "upgrade")
    assert "seeded 60 workspaces in 3 orgs" in cli.ok("demo", "seed", "--workspaces", "60")
    listed = cli.json("workspace", "list", "--limit", "1000")
    assert len(listed) == 60
    assert {w["runtime"] for w in listed} > {"claude-code", "codex"}

    again = cli.run("demo", "seed", "--workspaces", "60")
    assert again.returncode != 0
    assert "ALREADY_EXISTS" in again.stderr

    twin = Cli(tmp_path / "twin")
    twin.ok("demo", "seed", "--workspaces", "60")
    assert [(w["id"], w["model"]) for w in twin.json("workspace", "list", "--limit", "1000")] == [
        (w["id"], w["model"]) for w in listed
    ]
