"""``llmbilling org list``, and ``--org`` taking an org's unique name wherever it takes an id."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.cli.cli_runner import Cli

from llmbilling.cli.app import USAGE_EXIT_CODE


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def test_org_list_shows_every_org_by_name_with_its_default_and_workspace_count(cli: Cli) -> None:
    zeta = cli.ok("org", "create", "zeta").strip()
    acme = cli.ok("org", "create", "Acme", "--default", " BYOK").strip()
    for _ in range(2):
        cli.ok("workspace", "create", "--org", acme)

    listed = cli.json("org", "list")

    assert listed == [
        {"id": acme, "name": "Acme", "llm_billing_mode_default": " BYOK", "workspace_count": 2},
        {"id": zeta, "name": "zeta", "llm_billing_mode_default": None, "workspace_count": 0},
    ]
    table = cli.ok("org", "list")
    assert acme in table
    assert zeta in table


def test_org_list_stops_at_the_limit(cli: Cli) -> None:
    for name in ("a", "b", "c"):
        cli.ok("org", "create", name)

    assert [org["name"] for org in cli.json("org", "list", "--limit", "2")] == ["a", "b"]


@pytest.mark.parametrize(
    "command",
    [
        ("workspace", "create", "--org"),
        ("workspace", "list", "--org"),
        ("token", "create", "--scope", "viewer", "--org"),
        ("token", "list", "--org"),
    ],
    ids=lambda command: " ".join(command[:2]),
)
def test_a_unique_name_ignoring_case_stands_for_the_org_id(
    cli: Cli, command: tuple[str, ...]
) -> None:
    org_id = cli.ok("org", "create", "Acme Robotics").strip()
    cli.ok("org", "create", "Acme")

    result = cli.run(*command, "acme robotics")

    assert result.returncode == 0, result.stderr
    by_id = cli.run(*command, org_id)
    assert by_id.returncode == 0, by_id.stderr


def test_a_workspace_created_with_an_org_name_belongs_to_that_org(cli: Cli) -> None:
    org_id = cli.ok("org", "create", "acme").strip()

    workspace = cli.json("workspace", "create", "--org", "ACME")

    assert workspace["org_id"] == org_id


def test_a_secret_of_an_org_named_by_name_lands_on_that_org(cli: Cli) -> None:
    org_id = cli.ok("org", "create", "acme").strip()
    cli.ok("secrets", "set", "ANTHROPIC_API_KEY", "--org", "acme", stdin="sk-value\n")

    listed = cli.json("secrets", "list", "--org", org_id)

    assert [secret["name"] for secret in listed] == ["ANTHROPIC_API_KEY"]


def test_a_name_several_orgs_share_is_a_one_line_error_listing_them_with_ids(cli: Cli) -> None:
    ids = [cli.ok("org", "create", name).strip() for name in ("acme", "ACME", "Acme")]

    result = cli.run("workspace", "list", "--org", "acme")

    assert result.returncode == USAGE_EXIT_CODE
    (line,) = result.stderr.strip().splitlines()
    assert "--org" in line
    assert "named 'acme'" in line
    assert all(org_id in line for org_id in ids)


def test_an_ambiguous_name_lists_at_most_five_candidates(cli: Cli) -> None:
    for _ in range(7):
        cli.ok("org", "create", "twin")

    result = cli.run("workspace", "list", "--org", "twin")

    (line,) = result.stderr.strip().splitlines()
    assert line.count("'twin' (") == 5
    assert line.endswith(", and more")


def test_an_unknown_name_is_a_one_line_error_offering_names_that_start_so(cli: Cli) -> None:
    robotics = cli.ok("org", "create", "acme robotics").strip()
    cli.ok("org", "create", "zeta")

    result = cli.run("workspace", "create", "--org", "acme")

    assert result.returncode == USAGE_EXIT_CODE
    (line,) = result.stderr.strip().splitlines()
    assert "no organization is named 'acme'" in line
    assert f"'acme robotics' ({robotics})" in line
    assert "zeta" not in line
