"""Offline dependency audit: every pin of ``requirements.lock`` against a dated OSV snapshot.

    python tools/audit_offline.py [--advisories DIR] [--lock FILE]

``DIR`` (default ``../shared/advisories`` beside the repository) is a snapshot of the Python
Packaging Advisory Database: ``README.md`` states its source commit and date, and
``pypa/vulns/<name>/*.yaml`` holds one OSV entry per advisory, under the PEP 503 name of the
package it concerns. Only the folders of pinned packages are read; within them an entry counts
for a pin when an ``affected[]`` item names the pin's package (ecosystem PyPI, names compared
PEP 503-normalized) and its version is listed in ``versions`` or inside an ``ECOSYSTEM`` or
``SEMVER`` range (evaluated as the OSV schema says; ``GIT`` ranges name commits, not versions,
and are left to ``versions``). Withdrawn entries are skipped.

Prints the snapshot's date, the pins checked, the advisories read and each finding. Exit 0:
no pin is affected; 1: some pin is affected; 2: the snapshot or the lock file cannot be read
(or holds something this checker cannot judge, which it never passes over silently).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

REPOSITORY = Path(__file__).resolve().parent.parent
DEFAULT_ADVISORIES = REPOSITORY.parent / "shared" / "advisories"
DEFAULT_LOCK = REPOSITORY / "requirements.lock"
VERSION_RANGE_TYPES = frozenset({"ECOSYSTEM", "SEMVER"})
_SNAPSHOT_DATE = re.compile(r"commit\s+([0-9a-f]{7,40}),\s+dated\s+(\d{4}-\d{2}-\d{2})")


class AuditInputError(Exception):
    """The lock file or the snapshot cannot be read, or holds what the checker cannot judge."""


@dataclass(frozen=True, slots=True)
class Pin:
    """One ``name==version`` line of the lock file."""

    name: NormalizedName
    version: Version


@dataclass(frozen=True, slots=True)
class Event:
    """One OSV range event: ``kind`` is introduced, fixed, last_affected or limit."""

    kind: str
    version: Version | None
    """None for ``introduced: "0"`` (before every version) and ``limit: "*"`` (after)."""


@dataclass(frozen=True, slots=True)
class VersionRange:
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class Affected:
    """One ``affected[]`` item of the PyPI ecosystem."""

    name: NormalizedName
    versions: frozenset[Version]
    ranges: tuple[VersionRange, ...]


@dataclass(frozen=True, slots=True)
class Advisory:
    id: str
    aliases: tuple[str, ...]
    withdrawn: bool
    affected: tuple[Affected, ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    date: str
    commit: str
    advisories: tuple[Advisory, ...]
    files_in_snapshot: int


@dataclass(frozen=True, slots=True)
class Finding:
    pin: Pin
    advisory: Advisory
    fixed: tuple[Version, ...]
    """The fixed versions above the pin (sorted), from the ranges that contain it."""


# --- reading -------------------------------------------------------------------------------


def read_lock(path: Path) -> tuple[Pin, ...]:
    """Every requirement line of a lock file; each must pin one exact version."""
    pins = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        try:
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            if specifier.operator not in ("==", "==="):
                raise ValueError
            version = Version(specifier.version)
        except (InvalidRequirement, InvalidVersion, ValueError):
            raise AuditInputError(
                f"{path}:{number}: not an exact pin (name==version): {line}"
            ) from None
        pins.append(Pin(canonicalize_name(requirement.name), version))
    return tuple(pins)


def read_snapshot(folder: Path, names: Iterable[NormalizedName]) -> Snapshot:
    """The snapshot's date and commit (from its README) and its entries for ``names``."""
    readme = folder / "README.md"
    vulns = folder / "pypa" / "vulns"
    if not readme.is_file() or not vulns.is_dir():
        raise AuditInputError(f"{folder}: not an advisory snapshot (README.md, pypa/vulns/)")
    dated = _SNAPSHOT_DATE.search(readme.read_text(encoding="utf-8"))
    if dated is None:
        raise AuditInputError(f"{readme}: states no 'commit <sha>, dated YYYY-MM-DD'")
    files = sorted(path for name in set(names) for path in (vulns / name).glob("*.yaml"))
    advisories = tuple(_advisory(path) for path in files)
    return Snapshot(
        date=dated.group(2),
        commit=dated.group(1),
        advisories=advisories,
        files_in_snapshot=sum(1 for _ in vulns.glob("*/*.yaml")),
    )


def _advisory(path: Path) -> Advisory:
    document = yaml.load(path.read_bytes(), Loader=yaml.CSafeLoader)
    if not isinstance(document, dict) or not isinstance(document.get("id"), str):
        raise AuditInputError(f"{path}: not an OSV entry")
    return Advisory(
        id=document["id"],
        aliases=tuple(document.get("aliases") or ()),
        withdrawn=bool(document.get("withdrawn")),
        affected=tuple(
            _affected(path, item)
            for item in document.get("affected") or ()
            if (item.get("package") or {}).get("ecosystem") == "PyPI"
        ),
    )


def _affected(path: Path, item: dict[str, Any]) -> Affected:
    return Affected(
        name=canonicalize_name(item["package"]["name"]),
        versions=frozenset(_listed(path, text) for text in item.get("versions") or ()),
        ranges=tuple(
            VersionRange(tuple(_event(path, event) for event in entry.get("events") or ()))
            for entry in item.get("ranges") or ()
            if entry.get("type") in VERSION_RANGE_TYPES
        ),
    )


def _listed(path: Path, text: object) -> Version:
    try:
        return Version(str(text))
    except InvalidVersion:
        raise AuditInputError(f"{path}: listed version {text!r} is not PEP 440") from None


def _event(path: Path, event: dict[str, Any]) -> Event:
    ((kind, text),) = event.items()
    if (kind, str(text)) in (("introduced", "0"), ("limit", "*")):
        return Event(kind, None)
    try:
        return Event(kind, Version(str(text)))
    except InvalidVersion:
        raise AuditInputError(f"{path}: range event {kind}: {text!r} is not PEP 440") from None


# --- judging ---------------------------------------------------------------------------------


def in_range(version: Version, version_range: VersionRange) -> bool:
    """The OSV schema's evaluation: walk the events sorted by version; ``introduced`` opens,
    ``fixed`` closes at its version, ``last_affected`` closes after it; with ``limit``
    events the version must also be below one of them."""
    affected = False
    for event in sorted(version_range.events, key=_event_order):
        if event.kind == "introduced" and (event.version is None or version >= event.version):
            affected = True
        elif (event.kind == "fixed" and event.version is not None and version >= event.version) or (
            event.kind == "last_affected" and event.version is not None and version > event.version
        ):
            affected = False
    limits = [event.version for event in version_range.events if event.kind == "limit"]
    if limits and not any(limit is None or version < limit for limit in limits):
        return False
    return affected


def _event_order(event: Event) -> tuple[int, Version]:
    if event.version is None:  # introduced "0" sorts first, limit "*" last
        return (-1 if event.kind == "introduced" else 1, Version("0"))
    return (0, event.version)


def findings(pins: Sequence[Pin], advisories: Sequence[Advisory]) -> tuple[Finding, ...]:
    """Every (pin, advisory) where a non-withdrawn advisory lists or ranges the pin."""
    found = []
    for pin in pins:
        for advisory in advisories:
            if advisory.withdrawn:
                continue
            items = [item for item in advisory.affected if item.name == pin.name]
            hits = [
                item
                for item in items
                if pin.version in item.versions
                or any(in_range(pin.version, r) for r in item.ranges)
            ]
            if hits:
                fixed = sorted(
                    {
                        event.version
                        for item in hits
                        for r in item.ranges
                        if in_range(pin.version, r)
                        for event in r.events
                        if event.kind == "fixed"
                        and event.version is not None
                        and event.version > pin.version
                    }
                )
                found.append(Finding(pin, advisory, tuple(fixed)))
    return tuple(found)


# --- the command -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--advisories", type=Path, default=DEFAULT_ADVISORIES)
    parser.add_argument("--lock", type=Path, default=DEFAULT_LOCK)
    arguments = parser.parse_args(argv)
    try:
        pins = read_lock(arguments.lock)
        snapshot = read_snapshot(arguments.advisories, (pin.name for pin in pins))
    except (AuditInputError, OSError, yaml.YAMLError) as error:
        print(f"audit-offline: error: {error}", file=sys.stderr)
        return 2
    print(
        f"audit-offline: advisory snapshot dated {snapshot.date}"
        f" (commit {snapshot.commit[:12]}, {arguments.advisories})"
    )
    found = findings(pins, snapshot.advisories)
    withdrawn = sum(1 for advisory in snapshot.advisories if advisory.withdrawn)
    print(
        f"audit-offline: {len(pins)} pins checked against {len(snapshot.advisories)} advisories"
        f" for them ({withdrawn} withdrawn, skipped) of {snapshot.files_in_snapshot}"
        " in the snapshot"
    )
    for finding in found:
        aliases = ", ".join(finding.advisory.aliases) or "no aliases"
        fixed = ", ".join(str(v) for v in finding.fixed) or "no fixed version"
        print(
            f"audit-offline: AFFECTED {finding.pin.name}=={finding.pin.version}:"
            f" {finding.advisory.id} ({aliases}); fixed in {fixed}"
        )
    affected_pins = len({finding.pin for finding in found})
    print(f"audit-offline: {len(found)} finding(s) on {affected_pins} affected pin(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
