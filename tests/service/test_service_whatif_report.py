"""The what-if report files (``service/whatif_report.py``): JSON, CSV and HTML carry every
danger class (``starts_paying`` too), the per-org breakdown and the proposal itself — today's
and the proposed policy and registry as YAML, and their unified diffs, escaped in HTML."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path
from typing import Any

import pytest

from llmbilling import CONTRACT_POLICY, ResolutionInput, built_in_registry, compile_policy
from llmbilling.config.yaml_documents import parse_yaml_mapping
from llmbilling.core.registry import compile_registry
from llmbilling.core.whatif import Configuration, WhatIfReport, WhatIfTally, compare
from llmbilling.errors import RegistryError
from llmbilling.service.whatif_report import (
    ORGS_SHOWN,
    Proposal,
    proposal_of,
    render_html,
    report_document,
    worst_orgs,
    write_report,
)

REGISTRY = built_in_registry()
CURRENT = Configuration(CONTRACT_POLICY, REGISTRY)
NO_OVERRIDE_RUNG = compile_policy(
    {"rungs": ["org_default", "derived_provider", "deployment_default"]}, "p"
)
HOSTILE_NAME = "<script>alert(1)</script>"


def renamed_registry(name: str) -> Any:
    """The built-in registry with its first provider renamed (a field free text may fill)."""
    document = copy.deepcopy(REGISTRY.to_document())
    document["providers"][0]["name"] = name
    return compile_registry(document, "proposed.yaml")


PROPOSED = Configuration(NO_OVERRIDE_RUNG, renamed_registry(HOSTILE_NAME))


def workspace(**fields: Any) -> ResolutionInput:
    return ResolutionInput(**{"workspace_id": "ws", "runtime": "claude-code", **fields})


def report_of(rows: list[tuple[str, str, ResolutionInput]]) -> WhatIfReport:
    tally = WhatIfTally(CURRENT, PROPOSED)
    for org_id, workspace_id, inputs in rows:
        tally.add(org_id, workspace_id, compare(inputs, CURRENT, PROPOSED).change)
    return tally.report()


WOKEN = workspace(
    override="disabled", model="kimi-for-coding", auth_env=frozenset({"KIMI_API_KEY"})
)
STEADY = workspace(model="kimi-for-coding", auth_env=frozenset({"KIMI_API_KEY"}))
FLEET = [
    ("org-quiet", "ws-q1", STEADY),
    ("org-woken", "ws-w1", WOKEN),
    ("org-woken", "ws-w2", WOKEN),
    ("org-woken", "ws-w3", STEADY),
]


@pytest.fixture
def written(tmp_path: Path) -> Path:
    write_report(report_of(FLEET), proposal_of(CURRENT, PROPOSED), tmp_path)
    return tmp_path


def test_the_proposal_diff_shows_each_changed_line_with_both_versions() -> None:
    proposal = proposal_of(CURRENT, PROPOSED)
    assert proposal.policy.changed
    assert proposal.registry.changed
    assert f"--- current policy {CONTRACT_POLICY.version}" in proposal.policy.diff
    assert f"+++ proposed policy {NO_OVERRIDE_RUNG.version}" in proposal.policy.diff
    assert "-- workspace_override" in proposal.policy.diff
    assert f"+  name: {HOSTILE_NAME}" in proposal.registry.diff


def test_the_yaml_of_each_document_reads_back_with_its_version() -> None:
    proposal = proposal_of(CURRENT, PROPOSED)
    document = parse_yaml_mapping(proposal.registry.proposed, "proposed", RegistryError)
    assert compile_registry(document, "proposed").version == PROPOSED.registry.version  # type: ignore[union-attr]


def test_an_unchanged_document_has_no_diff() -> None:
    proposal = proposal_of(CURRENT, Configuration(NO_OVERRIDE_RUNG, REGISTRY))
    assert not proposal.registry.changed
    assert proposal.registry.diff == ""


def test_report_json_carries_starts_paying_the_per_org_breakdown_and_the_proposal(
    written: Path,
) -> None:
    document = json.loads((written / "report.json").read_text())
    assert document["dangers"]["starts_paying"] == 2
    assert document["danger_samples"]["starts_paying"] == ["ws-w1", "ws-w2"]
    woken = next(org for org in document["per_org"] if org["org_id"] == "org-woken")
    assert (woken["workspaces"], woken["changed"], woken["dangers"]["starts_paying"]) == (3, 2, 2)
    assert document["proposal"]["policy"]["diff"].startswith("--- current policy")
    assert document["proposal"]["registry"]["proposed"].count(HOSTILE_NAME) == 1


def test_transitions_csv_carries_starts_paying_and_per_org_counts(written: Path) -> None:
    with (written / "transitions.csv").open() as handle:
        rows = {
            (row["scope"], row["kind"], row["from"]): row["count"] for row in csv.DictReader(handle)
        }
    assert rows[("fleet", "danger", "starts_paying")] == "2"
    assert rows[("org-woken", "danger", "starts_paying")] == "2"
    assert rows[("org-woken", "workspaces", "")] == "3"
    assert rows[("org-woken", "changed", "")] == "2"


def test_report_html_shows_the_diff_and_the_per_org_table_escaped(written: Path) -> None:
    page = (written / "report.html").read_text()
    assert HOSTILE_NAME not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '<pre class="diff">' in page
    assert '<span class="add">+  name: &lt;script&gt;' in page
    assert "<h2>Per org</h2>" in page
    assert "<td><code>org-woken</code></td><td>3</td><td>2</td>" in page
    assert "starts_paying" in page


def test_a_page_lists_the_worst_orgs_first_and_counts_the_rest() -> None:
    rows = [(f"org-{index:04d}", f"ws-{index}", STEADY) for index in range(ORGS_SHOWN + 5)]
    rows.append(("org-zzzz", "ws-woken", WOKEN))
    document = report_document(report_of(rows), proposal_of(CURRENT, PROPOSED))
    shown, more = worst_orgs(document)
    assert (len(shown), more) == (ORGS_SHOWN, 6)
    assert shown[0]["org_id"] == "org-zzzz"
    page = render_html(document)
    assert "6 more orgs" in page


def test_a_proposal_document_is_the_policy_and_registry_each_with_its_three_texts() -> None:
    proposal: Proposal = proposal_of(CURRENT, PROPOSED)
    assert {name: sorted(texts) for name, texts in proposal.to_document().items()} == {
        "policy": ["current", "diff", "proposed"],
        "registry": ["current", "diff", "proposed"],
    }
