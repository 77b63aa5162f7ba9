"""Fleet what-if, pure part: comparisons, danger classes, the tally and the report files."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from llmbilling import CONTRACT_POLICY, ResolutionInput, built_in_registry, compile_policy
from llmbilling.core.whatif import Configuration, DangerClass, WhatIfTally, compare
from llmbilling.service.whatif_report import proposal_of, write_report

REGISTRY = built_in_registry()
CURRENT = Configuration(CONTRACT_POLICY, REGISTRY)
P2B = Configuration(
    compile_policy(
        {"rungs": ["workspace_override", "derived_provider", "deployment_default"]}, "p2b.yaml"
    ),
    REGISTRY,
)
OWN_KEY = Configuration(
    compile_policy(
        {
            "rungs": [
                "workspace_override",
                "org_default",
                "derived_provider",
                "deployment_default",
            ],
            "options": {"own_key_wins_over_org_default": True},
        },
        "own-key.yaml",
    ),
    REGISTRY,
)


def workspace(**fields: Any) -> ResolutionInput:
    return ResolutionInput(**{"workspace_id": "ws", "runtime": "claude-code", **fields})


FRESH = workspace(org_default="platform_managed", model="kimi-for-coding")


def test_2608_replay_dropping_the_org_rung_flags_fresh_workspaces_to_byok_without_credential() -> (
    None
):
    comparison = compare(FRESH, CURRENT, P2B)
    assert comparison.current.mode.value == "platform_managed"
    assert comparison.proposed.mode.value == "byok"
    assert DangerClass.TO_BYOK_WITHOUT_CREDENTIAL in comparison.change.dangers


def test_a_workspace_with_its_own_key_moving_to_byok_is_not_flagged_missing_credential() -> None:
    own_key = workspace(
        org_default="platform_managed",
        model="kimi-for-coding",
        auth_env=frozenset({"KIMI_API_KEY"}),
    )
    comparison = compare(own_key, CURRENT, P2B)
    assert comparison.proposed.mode.value == "byok"
    assert DangerClass.TO_BYOK_WITHOUT_CREDENTIAL not in comparison.change.dangers


def test_byok_to_platform_is_flagged_because_the_platform_starts_paying() -> None:
    own_key_org_byok = workspace(org_default="byok", model="openai/gpt-5.4")
    comparison = compare(own_key_org_byok, CURRENT, P2B)
    assert (comparison.current.mode.value, comparison.proposed.mode.value) == (
        "byok",
        "platform_managed",
    )
    assert DangerClass.BYOK_TO_PLATFORM in comparison.change.dangers


def test_to_platform_without_proxy_is_flagged_on_a_self_host_deployment() -> None:
    self_host = workspace(
        org_default="byok", model="platform/claude-opus-4-7", proxy_configured=False
    )
    comparison = compare(self_host, CURRENT, P2B)
    assert comparison.proposed.mode.value == "platform_managed"
    assert DangerClass.TO_PLATFORM_WITHOUT_PROXY in comparison.change.dangers


def test_to_disabled_is_flagged() -> None:
    disabled_org = workspace(
        org_default="disabled",
        runtime="codex",
        model="gpt-5.5",
        auth_env=frozenset({"OPENAI_API_KEY"}),
    )
    comparison = compare(disabled_org, OWN_KEY, CURRENT)
    assert (comparison.current.mode.value, comparison.proposed.mode.value) == ("byok", "disabled")
    assert comparison.change.dangers == (DangerClass.TO_DISABLED,)


def test_an_unchanged_decision_has_no_danger_even_when_it_already_fails() -> None:
    already_failing = workspace(model="kimi-for-coding")  # byok without key, before and after
    comparison = compare(already_failing, CURRENT, P2B)
    assert not comparison.change.mode_changed
    assert comparison.change.dangers == ()


def test_comparison_of_a_configuration_with_itself_never_changes() -> None:
    for inputs in (FRESH, workspace(model="opus"), workspace(override="byokk", model="x")):
        comparison = compare(inputs, CURRENT, CURRENT)
        assert comparison.current == comparison.proposed
        assert comparison.change.dangers == ()


def fleet() -> list[tuple[str, str, ResolutionInput]]:
    rows = []
    for index in range(30):
        rows.append(("org-saas", f"fresh-{index:02d}", FRESH))
    for index in range(5):
        rows.append(
            (
                "org-keys",
                f"keyed-{index}",
                workspace(
                    org_default="platform_managed",
                    model="kimi-for-coding",
                    auth_env=frozenset({"KIMI_API_KEY"}),
                ),
            )
        )
    rows.append(("org-keys", "pinned", workspace(override="platform_managed", model="gpt-5.5")))
    return rows


def tally(samples: int = 20) -> WhatIfTally:
    result = WhatIfTally(CURRENT, P2B, samples_per_class=samples)
    for org_id, workspace_id, inputs in fleet():
        result.add(org_id, workspace_id, compare(inputs, CURRENT, P2B).change)
    return result


def test_tally_counts_transitions_overall_and_per_org() -> None:
    report = tally().report()
    assert report.total == 36
    assert report.changed == 35
    assert report.mode_transitions == {
        ("platform_managed", "byok"): 35,
        ("platform_managed", "platform_managed"): 1,
    }
    assert report.source_transitions[("org_default", "derived_provider")] == 35
    assert report.per_org_mode_transitions["org-saas"] == {("platform_managed", "byok"): 30}
    assert report.dangers[DangerClass.TO_BYOK_WITHOUT_CREDENTIAL] == 30
    assert report.per_org_dangers == {"org-saas": {DangerClass.TO_BYOK_WITHOUT_CREDENTIAL: 30}}
    assert report.has_danger


def test_tally_keeps_a_bounded_sample_of_the_first_workspaces_per_class() -> None:
    report = tally(samples=3).report()
    assert report.danger_samples[DangerClass.TO_BYOK_WITHOUT_CREDENTIAL] == (
        "fresh-00",
        "fresh-01",
        "fresh-02",
    )
    assert len(report.mode_samples[("platform_managed", "byok")]) == 3


def test_report_records_both_configurations_versions() -> None:
    document = tally().report().to_document()
    assert document["current"] == {"policy": CONTRACT_POLICY.version, "registry": REGISTRY.version}
    assert document["proposed"]["policy"] == P2B.policy.version
    assert document["dangers"]["to_byok_without_credential"] == 30
    assert document["dangerous"] is True


def test_report_files_hold_the_same_counts(tmp_path: Path) -> None:
    paths = write_report(tally().report(), proposal_of(CURRENT, P2B), tmp_path / "out")
    assert sorted(path.name for path in paths) == ["report.html", "report.json", "transitions.csv"]
    document = json.loads((tmp_path / "out" / "report.json").read_text())
    assert document["total"] == 36
    with (tmp_path / "out" / "transitions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {
        "scope": "fleet",
        "kind": "danger",
        "from": "to_byok_without_credential",
        "to": "",
        "count": "30",
    } in rows
    page = (tmp_path / "out" / "report.html").read_text()
    assert "<svg" in page
    assert "to_byok_without_credential" in page
    assert "<script" not in page


@pytest.mark.parametrize("hostile", ["<script>alert(1)</script>", '"><img src=x>'])
def test_html_report_escapes_workspace_ids(tmp_path: Path, hostile: str) -> None:
    result = WhatIfTally(CURRENT, P2B)
    result.add("org", hostile, compare(FRESH, CURRENT, P2B).change)
    write_report(result.report(), proposal_of(CURRENT, P2B), tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert hostile not in page
