"""Write a what-if report as JSON, CSV and one self-contained HTML page (inline SVG chart),
with the proposal itself: today's and the proposed policy and registry as YAML, and their
unified diffs.

Every document a proposal holds was bounded when it was read (``core/documents.py``: at most
256 KiB), so its YAML and its diff are bounded too.
"""

from __future__ import annotations

import csv
import difflib
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmbilling.config.yaml_documents import dump_yaml_document
from llmbilling.core.whatif import Configuration, DangerClass, WhatIfReport, by_count

REPORT_FILES = ("report.json", "transitions.csv", "report.html")
ORGS_SHOWN = 100
"""Orgs a page lists (most danger first, then most changed); report.json, transitions.csv and
the API hold every org. A 100,000-workspace fleet may have thousands of orgs: a page of
thousands of rows is read by nobody, while the worst hundred are what a person acts on."""


@dataclass(frozen=True, slots=True)
class DocumentDiff:
    """One document of a proposal (``policy`` or ``registry``): today's and the proposed as
    YAML ("" when the registry could not be loaded) and their unified diff ("" when equal)."""

    name: str
    current: str
    proposed: str
    diff: str

    @property
    def changed(self) -> bool:
        return self.current != self.proposed

    def to_document(self) -> dict[str, str]:
        return {"current": self.current, "proposed": self.proposed, "diff": self.diff}


@dataclass(frozen=True, slots=True)
class Proposal:
    """What a what-if compared: both configurations' documents and their diffs."""

    policy: DocumentDiff
    registry: DocumentDiff

    @property
    def documents(self) -> tuple[DocumentDiff, DocumentDiff]:
        return (self.policy, self.registry)

    def to_document(self) -> dict[str, dict[str, str]]:
        return {diff.name: diff.to_document() for diff in self.documents}


def proposal_of(current: Configuration, proposed: Configuration) -> Proposal:
    """The proposal's documents as YAML (``dump_yaml_document``, which reads back with the same
    version) and the unified diff of each, headed by both versions."""
    current_registry = None if current.registry is None else current.registry.to_document()
    proposed_registry = None if proposed.registry is None else proposed.registry.to_document()
    return Proposal(
        policy=_diff(
            "policy",
            (current.policy.version, current.policy.to_document()),
            (proposed.policy.version, proposed.policy.to_document()),
        ),
        registry=_diff(
            "registry",
            (None if current.registry is None else current.registry.version, current_registry),
            (None if proposed.registry is None else proposed.registry.version, proposed_registry),
        ),
    )


def _diff(
    name: str, current: tuple[str | None, Any | None], proposed: tuple[str | None, Any | None]
) -> DocumentDiff:
    current_text = "" if current[1] is None else dump_yaml_document(current[1])
    proposed_text = "" if proposed[1] is None else dump_yaml_document(proposed[1])
    lines = difflib.unified_diff(
        current_text.splitlines(keepends=True),
        proposed_text.splitlines(keepends=True),
        fromfile=f"current {name} {current[0] or '(unavailable)'}",
        tofile=f"proposed {name} {proposed[0] or '(unavailable)'}",
    )
    return DocumentDiff(name, current_text, proposed_text, "".join(lines))


def report_document(report: WhatIfReport, proposal: Proposal) -> dict[str, Any]:
    """The report's wire shape (:meth:`WhatIfReport.to_document`) with the proposal's documents
    and diffs under ``proposal``: what ``report.json``, ``--json`` and the API carry."""
    return {**report.to_document(), "proposal": proposal.to_document()}


def write_report(report: WhatIfReport, proposal: Proposal, directory: Path) -> list[Path]:
    """Write report.json, transitions.csv and report.html into ``directory`` (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    document = report_document(report, proposal)
    json_path, csv_path, html_path = (directory / name for name in REPORT_FILES)
    json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    _write_csv(report, csv_path)
    html_path.write_text(render_html(document), encoding="utf-8")
    return [json_path, csv_path, html_path]


def _write_csv(report: WhatIfReport, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["scope", "kind", "from", "to", "count"])
        writer.writerow(["fleet", "workspaces", "", "", report.total])
        writer.writerow(["fleet", "changed", "", "", report.changed])
        for (old, new), count in by_count(report.mode_transitions):
            writer.writerow(["fleet", "mode", old, new, count])
        for (old, new), count in by_count(report.source_transitions):
            writer.writerow(["fleet", "source", old, new, count])
        for danger in DangerClass:
            writer.writerow(["fleet", "danger", danger.value, "", report.dangers.get(danger, 0)])
        for org_id, transitions in sorted(report.per_org_mode_transitions.items()):
            writer.writerow([org_id, "workspaces", "", "", sum(transitions.values())])
            writer.writerow([org_id, "changed", "", "", report.per_org_changed.get(org_id, 0)])
            for (old, new), count in by_count(transitions):
                writer.writerow([org_id, "mode", old, new, count])
            for danger, count in sorted(report.per_org_dangers.get(org_id, {}).items()):
                writer.writerow([org_id, "danger", danger.value, "", count])


def worst_orgs(document: dict[str, Any], limit: int = ORGS_SHOWN) -> tuple[list[Any], int]:
    """The report document's ``per_org`` entries a page lists — the ``limit`` with the most
    danger-class workspaces, then the most changed (ties by org id) — and how many are left
    out."""
    ranked = sorted(
        document["per_org"],
        key=lambda org: (-sum(org["dangers"].values()), -org["changed"], org["org_id"]),
    )
    return ranked[:limit], max(0, len(ranked) - limit)


def diff_line_class(line: str) -> str:
    """The CSS class of one unified-diff line: ``add``, ``del``, ``hunk``, ``file`` or ``""``."""
    if line.startswith(("+++", "---")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    if line.startswith("+"):
        return "add"
    if line.startswith("-"):
        return "del"
    return ""


_BAR_HEIGHT = 22
_LABEL_WIDTH = 330
_CHART_WIDTH = 820


def transition_chart(transitions: list[dict[str, Any]]) -> str:
    """A horizontal bar chart (SVG, escaped text) of mode transitions; changed ones orange."""
    if not transitions:
        return "<p>No workspaces.</p>"
    largest = max(item["count"] for item in transitions)
    bar_space = _CHART_WIDTH - _LABEL_WIDTH - 90
    rows = []
    for index, item in enumerate(transitions):
        y = index * (_BAR_HEIGHT + 6)
        width = max(1, round(bar_space * item["count"] / largest))
        changed = item["from"] != item["to"]
        colour = "#e8590c" if changed else "#adb5bd"
        label = html.escape(f"{item['from']} → {item['to']}")
        rows.append(
            f'<text x="{_LABEL_WIDTH - 8}" y="{y + 15}" text-anchor="end">{label}</text>'
            f'<rect x="{_LABEL_WIDTH}" y="{y}" width="{width}" height="{_BAR_HEIGHT}"'
            f' fill="{colour}"><title>{label}: {item["count"]:,}</title></rect>'
            f'<text x="{_LABEL_WIDTH + width + 6}" y="{y + 15}">{item["count"]:,}</text>'
        )
    height = len(transitions) * (_BAR_HEIGHT + 6)
    return (
        f'<svg role="img" aria-label="mode transitions" width="{_CHART_WIDTH}"'
        f' height="{height}" font-family="sans-serif" font-size="13">{"".join(rows)}</svg>'
    )


def _diff_html(name: str, diff: dict[str, str]) -> str:
    e = html.escape
    if not diff["diff"]:
        return f"<h3>{e(name)}</h3><p>Unchanged.</p>"
    lines = "".join(
        f'<span class="{diff_line_class(line)}">{e(line)}</span>'
        for line in diff["diff"].splitlines(keepends=True)
    )
    return (
        f'<h3>{e(name)}</h3><pre class="diff">{lines}</pre>'
        f"<details><summary>Current {e(name)}</summary><pre>{e(diff['current'])}</pre></details>"
        f"<details><summary>Proposed {e(name)}</summary><pre>{e(diff['proposed'])}</pre>"
        "</details>"
    )


def _org_rows(document: dict[str, Any]) -> str:
    e = html.escape
    shown, more = worst_orgs(document)
    rows = "".join(
        f'<tr class="{"bad" if any(org["dangers"].values()) else ""}">'
        f"<td><code>{e(org['org_id'])}</code></td><td>{org['workspaces']:,}</td>"
        f"<td>{org['changed']:,}</td>"
        + "".join(f"<td>{org['dangers'][danger.value]:,}</td>" for danger in DangerClass)
        + "</tr>"
        for org in shown
    )
    head = "".join(f"<th>{e(danger.value)}</th>" for danger in DangerClass)
    note = (
        f"<p>{more:,} more orgs (fewer dangers and changes) are in report.json and"
        " transitions.csv.</p>"
        if more
        else ""
    )
    return (
        f"<table><tr><th>org</th><th>workspaces</th><th>changed</th>{head}</tr>{rows}</table>{note}"
    )


def render_html(document: dict[str, Any]) -> str:
    """One self-contained page of a :func:`report_document`: no scripts, no external assets,
    every text escaped."""
    e = html.escape
    danger_rows = "".join(
        f'<tr class="{"bad" if count else ""}"><td>{e(name)}</td><td>{count:,}</td>'
        f'<td class="sample">{e(", ".join(document["danger_samples"][name]))}</td></tr>'
        for name, count in document["dangers"].items()
    )
    source_rows = "".join(
        f"<tr><td>{e(item['from'])}</td><td>{e(item['to'])}</td><td>{item['count']:,}</td></tr>"
        for item in document["source_transitions"]
    )
    sample_rows = "".join(
        f"<tr><td>{e(item['from'])} → {e(item['to'])}</td><td>{item['count']:,}</td>"
        f'<td class="sample">{e(", ".join(item["samples"]))}</td></tr>'
        for item in document["mode_transitions"]
        if item["from"] != item["to"]
    )
    verdict = (
        '<p class="verdict bad">Dangerous: at least one danger class is non-empty.</p>'
        if document["dangerous"]
        else '<p class="verdict ok">No danger class is non-empty.</p>'
    )
    current, proposed = document["current"], document["proposed"]
    diffs = "".join(_diff_html(name, diff) for name, diff in document["proposal"].items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>llmbilling what-if report</title>
<style>
body {{ font-family: sans-serif; margin: 2rem; color: #212529; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1.5rem; }}
td, th {{ border: 1px solid #dee2e6; padding: 0.3rem 0.6rem; text-align: left; }}
tr.bad td {{ background: #fff4e6; }}
.verdict {{ font-weight: bold; padding: 0.5rem; }}
.verdict.bad {{ background: #ffe3e3; }} .verdict.ok {{ background: #d3f9d8; }}
code {{ background: #f1f3f5; padding: 0 0.2rem; }}
td.sample {{ font-family: monospace; font-size: 11px; max-width: 40rem; }}
pre {{ background: #f8f9fa; padding: 0.5rem; overflow-x: auto; font-size: 12px; }}
pre.diff span {{ display: block; }}
pre.diff .add {{ background: #d3f9d8; }} pre.diff .del {{ background: #ffe3e3; }}
pre.diff .hunk {{ color: #1864ab; }} pre.diff .file {{ font-weight: bold; }}
</style></head><body>
<h1>What-if report</h1>
<p>Current policy <code>{e(current["policy"])}</code>, registry
<code>{e(str(current["registry"]))}</code>; proposed policy <code>{e(proposed["policy"])}</code>,
registry <code>{e(str(proposed["registry"]))}</code>.</p>
<p>{document["total"]:,} workspaces; {document["changed"]:,} would change mode or source.</p>
{verdict}
<h2>Danger classes</h2>
<table><tr><th>class</th><th>workspaces</th><th>sample</th></tr>{danger_rows}</table>
<h2>The proposal</h2>
{diffs}
<h2>Per org</h2>
{_org_rows(document)}
<h2>Mode transitions</h2>
{transition_chart(document["mode_transitions"])}
<h2>Workspaces that change mode (samples)</h2>
<table><tr><th>transition</th><th>workspaces</th><th>sample</th></tr>{sample_rows}</table>
<h2>Source transitions</h2>
<table><tr><th>from</th><th>to</th><th>workspaces</th></tr>{source_rows}</table>
</body></html>
"""
