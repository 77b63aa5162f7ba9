"""The README works as written: its walkthrough blocks run for real, in order, in a fresh
folder (its own SQLite store), each command exiting 0 (``bash -eu -o pipefail``)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from tests.environment import clean_environ

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
_BLOCK = re.compile(r"<!-- walkthrough: (?P<name>[\w-]+) -->\n```sh\n(?P<body>.*?)```", re.S)
SCENARIOS = {
    "saas": ("setup", "saas", "whatif"),
    "self-host": ("setup", "self-host"),
    "resolve": ("resolve",),
}


def _blocks() -> dict[str, str]:
    return {match["name"]: match["body"] for match in _BLOCK.finditer(README.read_text())}


def _run(scenario: str, folder: Path) -> subprocess.CompletedProcess[str]:
    # The repository's .venv/ and examples/ as a fresh clone has them; everything else is new.
    for name in (".venv", "examples"):
        (folder / name).symlink_to(ROOT / name)
    script = "\n".join(_blocks()[name] for name in SCENARIOS[scenario])
    return subprocess.run(
        ["bash", "-eu", "-o", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        env={**clean_environ(), "PATH": os.defpath, "COLUMNS": "200"},
        cwd=folder,
        check=False,
        timeout=300,
    )


def test_the_readme_opens_with_exactly_the_two_fresh_machine_commands() -> None:
    first_block = README.read_text().split("```sh\n", 1)[1].split("```", 1)[0]

    assert [line.split()[:2] for line in first_block.splitlines()] == [
        ["make", "demo"],
        ["make", "test"],
    ]


def test_every_walkthrough_block_of_the_readme_is_run_by_a_scenario() -> None:
    assert set(_blocks()) == {name for names in SCENARIOS.values() for name in names}


@pytest.mark.parametrize(
    ("scenario", "provisioned"),
    [
        ("saas", ["MOLECULE_LLM_BILLING_MODE_RESOLVED=platform_managed", "MOLECULE_LLM_BASE_URL="]),
        ("self-host", ["MOLECULE_LLM_BILLING_MODE_RESOLVED=byok", "KIMI_API_KEY=sk-your-kimi-key"]),
    ],
)
def test_a_readme_walkthrough_runs_as_written_and_provisions(
    tmp_path: Path, scenario: str, provisioned: list[str]
) -> None:
    result = _run(scenario, tmp_path)

    assert result.returncode == 0, result.stderr
    assert all(line in result.stdout for line in provisioned)
    assert (tmp_path / "llmbilling.sqlite3").is_file()


def test_the_readme_decision_commands_run_as_written(tmp_path: Path) -> None:
    result = _run("resolve", tmp_path)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "current.yaml").is_file()
    assert not (tmp_path / "llmbilling.sqlite3").exists()
