"""``llmbilling whatif`` through the real console script: report files and the deploy gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.cli.cli_runner import Cli

from llmbilling import CONTRACT_POLICY

P2B_POLICY = "rungs: [workspace_override, derived_provider, deployment_default]\n"
NO_OVERRIDE_POLICY = "rungs: [org_default, derived_provider, deployment_default]\n"
DANGER_EXIT_CODE = 10


@pytest.fixture
def fleet(tmp_path: Path) -> Cli:
    """A seeded synthetic fleet on a SaaS deployment (proxy configured)."""
    cli = Cli(tmp_path)
    cli.proxy = {
        "MOLECULE_LLM_BASE_URL": "https://proxy.test/v1",
        "MOLECULE_LLM_USAGE_TOKEN": "usage-token",
    }
    cli.ok("demo", "seed", "--workspaces", "300", "--seed", "2608")
    return cli


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text)
    return str(path)


def test_a_policy_that_drops_the_org_rung_fails_the_gate_and_writes_the_report(
    fleet: Cli, tmp_path: Path
) -> None:
    policy = write(tmp_path, "p2b.yaml", P2B_POLICY)
    result = fleet.run("whatif", "--policy", policy, "--out", str(tmp_path / "out"), "--json")
    assert result.returncode == DANGER_EXIT_CODE, result.stderr
    document = json.loads(result.stdout)
    assert document["total"] == 300
    assert document["dangers"]["to_byok_without_credential"] > 0
    assert document["proposed"]["policy"] != document["current"]["policy"]
    for name in ("report.json", "transitions.csv", "report.html"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == document


def test_the_contract_policy_written_out_passes_the_gate(fleet: Cli, tmp_path: Path) -> None:
    policy = write(tmp_path, "same.yaml", json.dumps(CONTRACT_POLICY.to_document()))
    result = fleet.run("whatif", "--policy", policy)
    assert result.returncode == 0, result.stderr
    assert "300 workspaces; 0 would change mode or source" in result.stdout


def test_whatif_needs_a_proposal(fleet: Cli) -> None:
    result = fleet.run("whatif")
    assert result.returncode == 2
    assert "--policy" in result.stderr


def test_an_invalid_policy_names_file_path_and_problem(fleet: Cli, tmp_path: Path) -> None:
    policy = write(tmp_path, "bad.yaml", "rungs: [org_default, workspace_override]\n")
    result = fleet.run("whatif", "--policy", policy)
    assert result.returncode == 2
    assert "POLICY_INVALID" in result.stderr
    assert policy in result.stderr
    assert "deployment_default" in result.stderr


def test_workspaces_that_would_start_paying_fail_the_gate(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli.proxy = {
        "MOLECULE_LLM_BASE_URL": "https://proxy.test/v1",
        "MOLECULE_LLM_USAGE_TOKEN": "usage-token",
    }
    org_id = cli.ok("org", "create", "switched-off", "--default", "platform_managed").strip()
    for _ in range(2):
        cli.ok("workspace", "create", "--org", org_id, "--model", "kimi-for-coding",
               "--override", "disabled")  # fmt: skip
    policy = write(tmp_path, "no-override.yaml", NO_OVERRIDE_POLICY)
    result = cli.run("whatif", "--policy", policy, "--json")
    assert result.returncode == DANGER_EXIT_CODE, result.stderr
    document = json.loads(result.stdout)
    assert {name: count for name, count in document["dangers"].items() if count} == {
        "starts_paying": 2
    }
    assert "- workspace_override" in document["proposal"]["policy"]["diff"]
