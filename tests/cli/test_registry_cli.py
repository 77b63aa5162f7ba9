"""``llmbilling registry show`` and ``registry diff`` through the real console script."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.cli.cli_runner import Cli
from tests.store.db_fixtures import DatabaseFactory

from llmbilling.config.registry import built_in_registry, load_registry

DANGER_EXIT_CODE = 10
PROXY_ENV = {"MOLECULE_LLM_BASE_URL": "https://proxy.test/v1", "MOLECULE_LLM_USAGE_TOKEN": "t"}

READABLE_NAME = "Plateforme — 計量 🚀"
# Text a YAML writer or reader may mangle: non-ASCII, a character beyond the BMP, NEL, LS and
# DEL (each either refused raw by PyYAML or read as a line break).
AWKWARD_NAME = "Acmé — 計量 🚀 next\x85line\u2028sep\x7fdel"
AWKWARD_REGISTRY: dict[str, Any] = {
    "schema_version": 2,
    "providers": [
        {
            "id": "platform",
            "name": READABLE_NAME,
            "platform": True,
            "auth_env": ["PLATFORM_TOKEN"],
            "pattern": "^platform/",
        },
        {"id": "acme", "name": AWKWARD_NAME, "auth_env": ["ACME_KEY"], "pattern": "^acmé-"},
    ],
    "runtimes": [
        {
            "id": "rt",
            "api": "openai",
            "proxy_env": {"base_url": "OPENAI_BASE_URL", "token": "OPENAI_API_KEY"},
            "providers": [{"provider": "acme", "exact": ["modèle-ü"]}],
        }
    ],
}


class RegistryCli(Cli):
    """:class:`Cli` with extra environment variables (a registry path, a database URL)."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder, with_store=False)
        self.extra: dict[str, str] = {}

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.extra}


@pytest.fixture
def cli(tmp_path: Path) -> RegistryCli:
    """No database file and no proxy settings, unless a test adds them."""
    return RegistryCli(tmp_path)


def write_registry(folder: Path, name: str, document: dict[str, Any]) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), "utf-8")
    return path


def built_in_edited(edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    document = built_in_registry().to_document()
    edit(document)
    return document


def provider(document: dict[str, Any], provider_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(p for p in document["providers"] if p["id"] == provider_id)
    return found


def groq_takes_llama(document: dict[str, Any]) -> None:
    provider(document, "groq")["pattern"] = "^(groq:|llama-)"


def openai_gains_a_credential(document: dict[str, Any]) -> None:
    provider(document, "openai")["auth_env"].append("OPENAI_ORG_KEY")


@pytest.fixture
def llama_registry(tmp_path: Path) -> Path:
    """The built-in registry where groq's pattern also takes ``llama-`` (listed on openclaw)."""
    return write_registry(tmp_path, "llama.yaml", built_in_edited(groq_takes_llama))


def diff_json(cli: Cli, *args: str) -> tuple[int, dict[str, Any]]:
    result = cli.run("registry", "diff", *args, "--json")
    assert result.returncode in (0, DANGER_EXIT_CODE), result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return result.returncode, document


# --- registry show -----------------------------------------------------------------------


@pytest.mark.parametrize("output_format", ["yaml", "json"])
@pytest.mark.parametrize("source", ["built-in", "configured", "flag"])
def test_registry_show_prints_a_file_registry_check_accepts_with_the_same_version(
    cli: RegistryCli, tmp_path: Path, source: str, output_format: str
) -> None:
    flags: list[str] = []
    expected = built_in_registry().version
    if source != "built-in":
        path = write_registry(tmp_path, "awkward.yaml", AWKWARD_REGISTRY)
        expected = load_registry(path).version
        if source == "configured":
            cli.extra["LLMBILLING_REGISTRY_PATH"] = str(path)
        else:
            flags = ["--registry", str(path)]
    shown = cli.ok("registry", "show", "--format", output_format, *flags)
    written = tmp_path / f"shown.{output_format}"
    written.write_text(shown, "utf-8")
    checked = cli.ok("registry", "check", str(written))
    assert checked.strip().endswith(f"version {expected}")


def test_registry_show_yaml_starts_with_the_version_as_a_comment(cli: RegistryCli) -> None:
    shown = cli.ok("registry", "show")
    assert shown.splitlines()[0] == f"# version: {built_in_registry().version}"


@pytest.mark.parametrize("document", [built_in_registry().to_document(), AWKWARD_REGISTRY])
def test_registry_show_json_parses_as_the_registry_document(
    cli: RegistryCli, tmp_path: Path, document: dict[str, Any]
) -> None:
    path = write_registry(tmp_path, "registry.yaml", document)
    shown = cli.ok("registry", "show", "--format", "json", "--registry", str(path))
    assert json.loads(shown) == load_registry(path).to_document()


def test_registry_show_of_the_built_in_registry_has_no_yaml_anchors_or_aliases(
    cli: RegistryCli,
) -> None:
    tokens = list(yaml.scan(cli.ok("registry", "show")))
    assert not [t for t in tokens if isinstance(t, yaml.AnchorToken | yaml.AliasToken)]


@pytest.mark.parametrize("output_format", ["yaml", "json"])
def test_registry_show_writes_non_ascii_text_unescaped(
    cli: RegistryCli, tmp_path: Path, output_format: str
) -> None:
    path = write_registry(tmp_path, "awkward.yaml", AWKWARD_REGISTRY)
    shown = cli.ok("registry", "show", "--format", output_format, "--registry", str(path))
    assert READABLE_NAME in shown
    assert "modèle-ü" in shown


# --- registry diff: the registries ---------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [("built-in", "built-in"), ("built-in", "shown.yaml"), ("shown.yaml", "shown.yaml")],
)
def test_registry_diff_of_a_registry_with_itself_reports_no_change_and_exits_0(
    cli: RegistryCli, old: str, new: str
) -> None:
    (cli.folder / "shown.yaml").write_text(cli.ok("registry", "show"), "utf-8")
    exit_code, document = diff_json(cli, old, new, "--proxy")
    assert exit_code == 0
    assert document["old"]["version"] == document["new"]["version"]
    for changes in ("rule_changes", "provider_changes", "runtime_changes", "input_changes"):
        assert document[changes] == []


def test_a_prefix_a_pattern_gains_is_reported_as_a_rule_added(
    cli: RegistryCli, llama_registry: Path
) -> None:
    _, document = diff_json(cli, "built-in", str(llama_registry), "--proxy")
    assert document["rule_changes"] == [
        {
            "runtime": "openclaw",
            "provider": "groq",
            "added": [{"kind": "prefix", "text": "llama-"}],
            "removed": [],
        }
    ]


@pytest.mark.parametrize(
    ("flags", "proxy_env", "exit_code", "old_mode"),
    [
        (["--proxy"], {}, DANGER_EXIT_CODE, "platform_managed"),
        (["--no-proxy"], PROXY_ENV, 0, "byok"),
        ([], PROXY_ENV, DANGER_EXIT_CODE, "platform_managed"),
        ([], {}, 0, "byok"),
    ],
)
def test_a_new_prefix_turns_an_unregistered_probe_into_the_vendor_and_fails_on_a_mode_change(
    cli: RegistryCli,
    llama_registry: Path,
    flags: list[str],
    proxy_env: dict[str, str],
    exit_code: int,
    old_mode: str,
) -> None:
    cli.proxy = proxy_env
    returned, document = diff_json(cli, "built-in", str(llama_registry), *flags)
    assert returned == exit_code
    assert {
        "runtime": "openclaw",
        "model": "llama-x",
        "auth_env": [],
        "old": {"provider": None, "outcome": "unregistered_model", "mode": old_mode},
        "new": {"provider": "groq", "outcome": "ok", "mode": "byok"},
        "mode_changed": old_mode != "byok",
    } in document["input_changes"]


def test_an_added_credential_name_is_a_provider_change_and_no_mode_change(
    cli: RegistryCli, tmp_path: Path
) -> None:
    new = write_registry(tmp_path, "new.yaml", built_in_edited(openai_gains_a_credential))
    exit_code, document = diff_json(cli, "built-in", str(new), "--proxy")
    assert exit_code == 0
    assert document["provider_changes"] == [
        {
            "provider": "openai",
            "change": "changed",
            "fields": {
                "auth_env": {
                    "old": ["OPENAI_API_KEY"],
                    "new": ["OPENAI_API_KEY", "OPENAI_ORG_KEY"],
                    "added": ["OPENAI_ORG_KEY"],
                    "removed": [],
                }
            },
        }
    ]
    assert not any(change["mode_changed"] for change in document["input_changes"])


@pytest.mark.parametrize("built_in_side", ["old", "new"])
def test_built_in_names_the_packaged_registry_on_either_side(
    cli: RegistryCli, llama_registry: Path, built_in_side: str
) -> None:
    pair = ["built-in", str(llama_registry)]
    if built_in_side == "new":
        pair.reverse()
    _, document = diff_json(cli, *pair, "--proxy")
    assert document[built_in_side] == {"source": "built-in", "version": built_in_registry().version}
    other = "new" if built_in_side == "old" else "old"
    assert document[other]["version"] == load_registry(llama_registry).version
    assert document["rule_changes"] != []


@pytest.mark.parametrize("bad_side", ["old", "new"])
@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "cannot read the file"), ("schema_version: 1\n", "schema_version")],
)
def test_a_missing_or_invalid_registry_on_either_side_is_one_line_and_exit_2(
    cli: RegistryCli, tmp_path: Path, bad_side: str, content: str | None, problem: str
) -> None:
    bad = tmp_path / "bad.yaml"
    if content is not None:
        bad.write_text(content)
    pair = [str(bad), "built-in"] if bad_side == "old" else ["built-in", str(bad)]
    result = cli.run("registry", "diff", *pair)
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"llmbilling: error: REGISTRY_INVALID: {bad}")
    assert problem in line


def test_registry_diff_prints_the_changes_as_tables(cli: RegistryCli, llama_registry: Path) -> None:
    result = cli.run("registry", "diff", "built-in", str(llama_registry), "--proxy")
    assert result.returncode == DANGER_EXIT_CODE, result.stderr
    for text in (
        "rule changes",
        "prefix 'llama-'",
        "^(groq:|llama-)",
        "llama-x",
        "platform_managed (unregistered_model)",
        "byok (groq)",
        "probes: 2 inputs derive differently, 2 of them change mode",
    ):
        assert text in result.stdout


# --- registry diff: the stored fleet --------------------------------------------------------


def test_without_a_database_the_fleet_is_skipped_in_one_line(
    cli: RegistryCli, llama_registry: Path
) -> None:
    result = cli.run("registry", "diff", "built-in", str(llama_registry), "--no-proxy", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["fleet"] is None
    assert result.stderr.splitlines() == [
        "llmbilling: fleet: skipped, no database configured (--database-url or"
        " LLMBILLING_DATABASE_URL; a SQLite file must exist)"
    ]
    assert not (cli.folder / "store.sqlite3").exists()


def seed_fleet(cli: Cli) -> None:
    """Two openclaw workspaces on a llama model no registry rule names, one codex workspace."""
    cli.ok("db", "upgrade")
    org = cli.ok("org", "create", "acme").strip()
    for runtime, model in [("openclaw", "llama-3"), ("openclaw", "llama-3"), ("codex", "gpt-5.5")]:
        cli.ok("workspace", "create", "--org", org, "--runtime", runtime, "--model", model)


def test_registry_diff_reports_the_stored_fleet_groups_and_the_changed_ones(
    cli: RegistryCli, new_database: DatabaseFactory, llama_registry: Path
) -> None:
    cli.extra["LLMBILLING_DATABASE_URL"] = new_database()
    seed_fleet(cli)
    exit_code, document = diff_json(cli, "built-in", str(llama_registry), "--proxy")
    assert exit_code == DANGER_EXIT_CODE
    assert document["fleet"] == {
        "groups": 2,
        "workspaces": 3,
        "unreadable": 0,
        "changed_workspaces": 2,
        "mode_changed_workspaces": 2,
        "changes": [
            {
                "runtime": "openclaw",
                "model": "llama-3",
                "auth_env": [],
                "old": {
                    "provider": None,
                    "outcome": "unregistered_model",
                    "mode": "platform_managed",
                },
                "new": {"provider": "groq", "outcome": "ok", "mode": "byok"},
                "mode_changed": True,
                "workspaces": 2,
            }
        ],
    }
