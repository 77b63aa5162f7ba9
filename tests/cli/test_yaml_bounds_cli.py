"""Registry and policy files given to the CLI are bounded before they are validated
(docs/API.md "Document bounds"): a billion-laughs file is refused with a one-line usage error
naming the file, on every command that reads one."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.cli.cli_runner import Cli
from tests.core.hostile_documents import (
    A_PYTHON_TAG,
    BILLION_LAUGHS,
    TOO_DEEP,
    TOO_MANY_BYTES,
    TOO_MANY_NODES,
)

from llmbilling.cli.app import USAGE_EXIT_CODE

COMMANDS_READING_A_FILE = [
    pytest.param(("policy", "check", "{file}"), id="policy-check"),
    pytest.param(("policy", "show", "{file}"), id="policy-show"),
    pytest.param(("registry", "check", "{file}"), id="registry-check"),
    pytest.param(("registry", "show", "--registry", "{file}"), id="registry-show"),
    pytest.param(("whatif", "--policy", "{file}"), id="whatif-policy"),
    pytest.param(("whatif", "--registry", "{file}"), id="whatif-registry"),
]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def refusal(cli: Cli, args: tuple[str, ...], text: str) -> str:
    """The one-line error a command gives for a file holding ``text``."""
    path = cli.folder / "proposed.yaml"
    path.write_text(text, encoding="utf-8")
    result = cli.run(*(arg.format(file=path) for arg in args))
    assert result.returncode == USAGE_EXIT_CODE, result.stderr
    assert str(path) in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    return result.stderr


@pytest.mark.parametrize("args", COMMANDS_READING_A_FILE)
def test_every_command_refuses_a_billion_laughs_file(cli: Cli, args: tuple[str, ...]) -> None:
    assert "refused: YAML anchors and aliases are not allowed" in refusal(cli, args, BILLION_LAUGHS)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(A_PYTHON_TAG, "explicit YAML tags are not allowed", id="tag"),
        pytest.param(TOO_DEEP, "levels deep", id="too-deep"),
        pytest.param(TOO_MANY_NODES, "nodes", id="too-many-nodes"),
        pytest.param(TOO_MANY_BYTES, "bytes", id="too-many-bytes"),
    ],
)
def test_policy_check_names_the_bound_a_file_exceeds(cli: Cli, text: str, problem: str) -> None:
    assert problem in refusal(cli, ("policy", "check", "{file}"), text)
