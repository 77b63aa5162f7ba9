"""``tools/audit_offline.py``: the pins of a lock file against an OSV snapshot, offline.

Each rule of the OSV schema's range evaluation is a row of fixture entries written to a
temporary snapshot; the last test runs the checker on the real snapshot and lock file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from tools.audit_offline import REPOSITORY, main

README = "- source: a test fixture, commit 0123456789abcdef0123, dated 2026-01-02\n"


def _entry(name: str, *, ranges: list[Any] | None = None, **fields: Any) -> dict[str, Any]:
    affected: dict[str, Any] = {"package": {"name": name, "ecosystem": "PyPI"}}
    if ranges is not None:
        affected["ranges"] = ranges
    if "versions" in fields:
        affected["versions"] = fields.pop("versions")
    return {"id": "PYSEC-TEST-1", "aliases": ["CVE-TEST-1"], "affected": [affected], **fields}


def _events(*events: tuple[str, str], kind: str = "ECOSYSTEM") -> dict[str, Any]:
    return {"type": kind, "events": [{key: value} for key, value in events]}


def _snapshot(folder: Path, entries: list[dict[str, Any]], readme: str = README) -> Path:
    (folder / "pypa" / "vulns").mkdir(parents=True)
    (folder / "README.md").write_text(readme, encoding="utf-8")
    for number, entry in enumerate(entries):
        name = entry["affected"][0]["package"]["name"].lower()
        package = folder / "pypa" / "vulns" / name
        package.mkdir(parents=True, exist_ok=True)
        (package / f"{entry['id']}-{number}.yaml").write_text(yaml.safe_dump(entry))
    return folder


def _audit(tmp_path: Path, entries: list[dict[str, Any]], lock: str) -> int:
    snapshot = _snapshot(tmp_path / "advisories", entries)
    (tmp_path / "requirements.lock").write_text(lock, encoding="utf-8")
    return main(["--advisories", str(snapshot), "--lock", str(tmp_path / "requirements.lock")])


INTRODUCED_FIXED = _events(("introduced", "1.0"), ("fixed", "1.5"))
FROM_ZERO = _events(("introduced", "0"), ("fixed", "2.0"))
LAST_AFFECTED = _events(("introduced", "1.0"), ("last_affected", "1.2"))
TWO_INTERVALS = _events(
    ("introduced", "1.0"), ("fixed", "1.2"), ("introduced", "2.0"), ("fixed", "2.3")
)
LIMITED = _events(("introduced", "0"), ("limit", "2.0"))
SEMVER = _events(("introduced", "1.0.0"), ("fixed", "1.4.0"), kind="SEMVER")
GIT = _events(("introduced", "0"), ("fixed", "abc123"), kind="GIT")


@pytest.mark.parametrize(
    ("entry", "pin", "affected"),
    [
        # introduced includes, fixed excludes
        (_entry("pkg", ranges=[INTRODUCED_FIXED]), "1.0", True),
        (_entry("pkg", ranges=[INTRODUCED_FIXED]), "1.4.9", True),
        (_entry("pkg", ranges=[INTRODUCED_FIXED]), "1.5", False),
        (_entry("pkg", ranges=[INTRODUCED_FIXED]), "0.9", False),
        # introduced "0": every version before the fix
        (_entry("pkg", ranges=[FROM_ZERO]), "0.0.1", True),
        (_entry("pkg", ranges=[FROM_ZERO]), "2.0", False),
        # last_affected includes itself, nothing after
        (_entry("pkg", ranges=[LAST_AFFECTED]), "1.2", True),
        (_entry("pkg", ranges=[LAST_AFFECTED]), "1.2.1", False),
        # events out of order are sorted by version
        (_entry("pkg", ranges=[_events(("fixed", "1.5"), ("introduced", "1.0"))]), "1.2", True),
        # several intervals in one range, and several ranges
        (_entry("pkg", ranges=[TWO_INTERVALS]), "1.1", True),
        (_entry("pkg", ranges=[TWO_INTERVALS]), "1.5", False),
        (_entry("pkg", ranges=[TWO_INTERVALS]), "2.2", True),
        (_entry("pkg", ranges=[INTRODUCED_FIXED, _events(("introduced", "3.0"))]), "3.1", True),
        (_entry("pkg", ranges=[INTRODUCED_FIXED, _events(("introduced", "3.0"))]), "2.0", False),
        # limit: below it only
        (_entry("pkg", ranges=[LIMITED]), "1.9", True),
        (_entry("pkg", ranges=[LIMITED]), "2.0", False),
        # SEMVER ranges are evaluated too; GIT ranges (commits) are not
        (_entry("pkg", ranges=[SEMVER]), "1.3.9", True),
        (_entry("pkg", ranges=[GIT]), "1.0", False),
        (_entry("pkg", ranges=[GIT], versions=["1.0"]), "1.0", True),
        # an explicit version list, compared as PEP 440 versions
        (_entry("pkg", versions=["1.0", "1.1"]), "1.1", True),
        (_entry("pkg", versions=["1.0", "1.1"]), "1.0.0", True),
        (_entry("pkg", versions=["1.0", "1.1"]), "1.2", False),
        # pre-releases sort before their release
        (_entry("pkg", ranges=[FROM_ZERO]), "2.0rc1", True),
        (_entry("pkg", ranges=[_events(("introduced", "2.0"))]), "2.0rc1", False),
        (_entry("pkg", ranges=[_events(("introduced", "2.0"))]), "2.0.post1", True),
        # a withdrawn entry counts for nothing
        (_entry("pkg", ranges=[FROM_ZERO], withdrawn="2026-01-01T00:00:00Z"), "1.0", False),
        # names compared PEP 503-normalized, both ways
        (_entry("PyYAML", ranges=[FROM_ZERO]), "1.0", True),
    ],
)
def test_a_pin_is_affected_as_the_osv_schema_evaluates_it(
    tmp_path: Path, entry: dict[str, Any], pin: str, affected: bool
) -> None:
    name = "pyyaml" if entry["affected"][0]["package"]["name"] == "PyYAML" else "pkg"
    assert _audit(tmp_path, [entry], f"{name}=={pin}\n") == (1 if affected else 0)


@pytest.mark.parametrize(
    ("entry_name", "pinned_name"), [("PyYAML", "pyyaml"), ("pyyaml", "PyYAML")]
)
def test_package_names_match_pep_503_normalized(
    tmp_path: Path, entry_name: str, pinned_name: str
) -> None:
    entry = _entry(entry_name, ranges=[FROM_ZERO])
    assert _audit(tmp_path, [entry], f"{pinned_name}==1.0\n") == 1


def test_another_ecosystems_entry_does_not_count(tmp_path: Path) -> None:
    entry = _entry("pkg", ranges=[FROM_ZERO])
    entry["affected"][0]["package"]["ecosystem"] = "npm"
    assert _audit(tmp_path, [entry], "pkg==1.0\n") == 0


def test_a_finding_names_package_version_advisory_aliases_and_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = [_entry("pkg", ranges=[INTRODUCED_FIXED])]
    assert _audit(tmp_path, entries, "# a comment\npkg==1.2\nother==3.0\n") == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "audit-offline: advisory snapshot dated 2026-01-02 (commit 0123456789ab,"
        f" {tmp_path / 'advisories'})",
        "audit-offline: 2 pins checked against 1 advisories for them (0 withdrawn, skipped)"
        " of 1 in the snapshot",
        "audit-offline: AFFECTED pkg==1.2: PYSEC-TEST-1 (CVE-TEST-1); fixed in 1.5",
        "audit-offline: 1 finding(s) on 1 affected pin(s)",
    ]


@pytest.mark.parametrize(
    ("lock", "readme", "problem"),
    [
        ("pkg>=1.0\n", README, "not an exact pin (name==version): pkg>=1.0"),
        ("pkg\n", README, "not an exact pin (name==version): pkg"),
        ("pkg==1.0\n", "no date here\n", "states no 'commit <sha>, dated YYYY-MM-DD'"),
    ],
)
def test_what_the_checker_cannot_judge_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lock: str, readme: str, problem: str
) -> None:
    snapshot = _snapshot(tmp_path / "advisories", [], readme=readme)
    (tmp_path / "requirements.lock").write_text(lock, encoding="utf-8")
    arguments = ["--advisories", str(snapshot), "--lock", str(tmp_path / "requirements.lock")]
    assert main(arguments) == 2
    assert problem in capsys.readouterr().err


def test_a_range_version_that_is_not_pep_440_exits_2(tmp_path: Path) -> None:
    entry = _entry("pkg", ranges=[_events(("introduced", "0"), ("fixed", "not-a-version!"))])
    assert _audit(tmp_path, [entry], "pkg==1.0\n") == 2


def test_the_real_lock_file_against_the_real_snapshot_completes_and_prints_its_date() -> None:
    result = subprocess.run(
        [sys.executable, str(REPOSITORY / "tools" / "audit_offline.py")],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    # 1 would be a real finding: the CI step `make audit-offline` fails on it, and so does this.
    assert result.returncode == 0, result.stdout + result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith(
        "audit-offline: advisory snapshot dated 2026-07-23 (commit 57da901aadaf"
    )
