"""What the CLI prints when piped: full ids and names on one line per row (plain columns, no
table frame, whatever the terminal width says), ``--json`` on every listing, and
``workspace show`` explaining its decision."""

from __future__ import annotations

import json
import re
from pathlib import Path
from uuid import UUID

import pytest
from tests.cli.cli_runner import Cli

LONG_NAME = "an organization name much longer than any narrow terminal column would ever hold"
# Each listing: its arguments (ORG: the org's id), the columns holding ids, the one holding
# the long name (None: it shows none).
LISTINGS: dict[str, tuple[list[str], list[int], int | None]] = {
    "org list": (["org", "list"], [0], 1),
    "workspace list": (["workspace", "list"], [0, 1], None),
    "token list": (["token", "list"], [0, 3], 1),
    "secrets list": (["secrets", "list", "--org", "ORG"], [], None),
}


class NarrowCli(Cli):
    """The console script with a 40-column terminal width in its environment."""

    def env(self) -> dict[str, str]:
        return {**super().env(), "COLUMNS": "40"}


@pytest.fixture
def cli(tmp_path: Path) -> NarrowCli:
    return NarrowCli(tmp_path)


@pytest.fixture
def fleet(cli: NarrowCli) -> tuple[str, str]:
    org_id = cli.ok("org", "create", LONG_NAME, "--default", "byok").strip()
    workspace_id = cli.ok(
        "workspace", "create", "--org", org_id, "--runtime", "claude-code", "--model", "opus"
    ).strip()
    cli.ok("secrets", "set", "ANTHROPIC_API_KEY", "--org", org_id, stdin="sk-value\n")
    cli.ok("token", "create", "--scope", "viewer", "--org", org_id, "--name", LONG_NAME)
    return org_id, workspace_id


def _cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def _arguments(listing: str, org_id: str) -> list[str]:
    return [org_id if argument == "ORG" else argument for argument in LISTINGS[listing][0]]


@pytest.mark.parametrize("listing", list(LISTINGS))
def test_a_piped_listing_is_plain_columns_one_line_a_row_with_whole_ids_and_names(
    cli: NarrowCli, fleet: tuple[str, str], listing: str
) -> None:
    org_id, _ = fleet

    lines = cli.ok(*_arguments(listing, org_id)).splitlines()

    assert len(lines) == 2  # the header and the one row: nothing wrapped onto another line
    assert not re.search("[┏━┃│└─…]", "\n".join(lines))
    row = _cells(lines[1])
    assert len(row) == len(_cells(lines[0]))
    _, id_columns, name_column = LISTINGS[listing]
    assert all(UUID(row[index]) for index in id_columns)
    assert name_column is None or row[name_column] == LONG_NAME


@pytest.mark.parametrize("listing", list(LISTINGS))
def test_every_listing_takes_json(cli: NarrowCli, fleet: tuple[str, str], listing: str) -> None:
    org_id, _ = fleet

    listed = json.loads(cli.ok(*_arguments(listing, org_id), "--json"))

    assert len(listed) == 1


def test_workspace_show_explains_the_decision_with_its_trace_by_default(
    cli: NarrowCli, fleet: tuple[str, str]
) -> None:
    _, workspace_id = fleet

    lines = cli.ok("workspace", "show", workspace_id).splitlines()

    assert _cells(lines[0]) == ["id", workspace_id]
    assert "why this mode" in lines
    trace = [_cells(line)[1] for line in lines if re.match(r"\d+\s", line)]
    assert trace == ["workspace_override", "org_default", "derived_provider", "deployment_default"]
