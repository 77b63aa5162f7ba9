"""Write a what-if report as JSON, CSV and one self-contained HTML page (inline SVG chart)."""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path
from typing import Any

from llmbilling.core.whatif import DangerClass, WhatIfReport, by_count

REPORT_FILES = ("report.json", "transitions.csv", "report.html")


def write_report(report: WhatIfReport, directory: Path) -> list[Path]:
    """Write report.json, transitions.csv and report.html into ``directory`` (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    document = report.to_document()
    json_path, csv_path, html_path = (directory / name for name in REPORT_FILES)
    json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    _write_csv(report, csv_path)
    html_path.write_text(render_html(document), encoding="utf-8")
    return [json_path, csv_path, html_path]


def _write_csv(report: WhatIfReport, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["scope", "kind", "from", "to", "count"])
        for (old, new), count in by_count(report.mode_transitions):
            writer.writerow(["fleet", "mode", old, new, count])
        for (old, new), count in by_count(report.source_transitions):
            writer.writerow(["fleet", "source", old, new, count])
        for danger in DangerClass:
            writer.writerow(["fleet", "danger", danger.value, "", report.dangers.get(danger, 0)])
        for org_id, transitions in sorted(report.per_org_mode_transitions.items()):
            for (old, new), count in by_count(transitions):
                writer.writerow([org_id, "mode", old, new, count])
            for danger, count in sorted(report.per_org_dangers.get(org_id, {}).items()):
                writer.writerow([org_id, "danger", danger.value, "", count])


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
            f' fill="{colour}"><title>{label}: {item["count"]}</title></rect>'
            f'<text x="{_LABEL_WIDTH + width + 6}" y="{y + 15}">{item["count"]:,}</text>'
        )
    height = len(transitions) * (_BAR_HEIGHT + 6)
    return (
        f'<svg role="img" aria-label="mode transitions" width="{_CHART_WIDTH}"'
        f' height="{height}" font-family="sans-serif" font-size="13">{"".join(rows)}</svg>'
    )


def render_html(document: dict[str, Any]) -> str:
    """One self-contained page: no scripts, no external assets."""
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
</style></head><body>
<h1>What-if report</h1>
<p>Current policy <code>{e(current["policy"])}</code>, registry
<code>{e(str(current["registry"]))}</code>; proposed policy <code>{e(proposed["policy"])}</code>,
registry <code>{e(str(proposed["registry"]))}</code>.</p>
<p>{document["total"]:,} workspaces; {document["changed"]:,} would change mode or source.</p>
{verdict}
<h2>Danger classes</h2>
<table><tr><th>class</th><th>workspaces</th><th>sample</th></tr>{danger_rows}</table>
<h2>Mode transitions</h2>
{transition_chart(document["mode_transitions"])}
<h2>Workspaces that change mode (samples)</h2>
<table><tr><th>transition</th><th>workspaces</th><th>sample</th></tr>{sample_rows}</table>
<h2>Source transitions</h2>
<table><tr><th>from</th><th>to</th><th>workspaces</th></tr>{source_rows}</table>
</body></html>
"""
