"""The precedence policy as data: validation, the contract's policy, options and versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmbilling import (
    CONTRACT_POLICY,
    BillingMode,
    DecisionSource,
    PolicyError,
    ResolutionInput,
    RungName,
    RungStatus,
    built_in_registry,
    compile_policy,
    load_policy,
    resolve_billing_mode,
)

ALL_RUNGS = [rung.value for rung in RungName]
WITHOUT_ORG_RUNG = ["workspace_override", "derived_provider", "deployment_default"]


def policy(rungs: list[str], **options: bool) -> dict[str, Any]:
    return {"schema_version": 1, "rungs": rungs, "options": options}


def test_contract_policy_consults_the_rungs_in_spec_order() -> None:
    assert CONTRACT_POLICY.rungs == tuple(RungName)
    assert not CONTRACT_POLICY.own_key_wins_over_org_default


def test_load_policy_without_a_path_is_the_contract_policy() -> None:
    assert load_policy(None) is CONTRACT_POLICY


def test_same_document_same_version_and_different_document_different_version() -> None:
    first = compile_policy(policy(ALL_RUNGS), "a.yaml")
    assert first.version == compile_policy(policy(ALL_RUNGS), "b.yaml").version
    assert first.version == CONTRACT_POLICY.version
    assert first.version != compile_policy(policy(WITHOUT_ORG_RUNG), "c.yaml").version


@pytest.mark.parametrize(
    ("document", "path", "problem"),
    [
        (
            policy(["workspace_override", "org_defualt", "deployment_default"]),
            "rungs[1]",
            "deployment_default",
        ),
        (policy(["org_default", "deployment_default", "org_default"]), "", "only once"),
        (policy(["workspace_override", "org_default"]), "", "last rung must be"),
        (policy([]), "rungs", "at least 1"),
        (policy(ALL_RUNGS, no_such_option=True), "options.no_such_option", "Extra inputs"),
        ({"rungs": ALL_RUNGS, "extra": 1}, "extra", "Extra inputs"),
        ({"schema_version": 2, "rungs": ALL_RUNGS}, "schema_version", "1"),
        (
            policy(
                ["derived_provider", "org_default", "deployment_default"],
                own_key_wins_over_org_default=True,
            ),
            "",
            "org_default before derived_provider",
        ),
    ],
)
def test_invalid_policy_names_source_path_and_problem(
    document: dict[str, Any], path: str, problem: str
) -> None:
    with pytest.raises(PolicyError) as raised:
        compile_policy(document, "proposed.yaml")
    error = raised.value
    assert error.code == "POLICY_INVALID"
    assert error.file == "proposed.yaml"
    assert error.path == path
    assert problem in error.message


def test_unreadable_policy_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(PolicyError, match="cannot read the file") as raised:
        load_policy(missing)
    assert raised.value.file == str(missing)


def test_policy_file_round_trips_through_yaml(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("rungs: [workspace_override, derived_provider, deployment_default]\n")
    loaded = load_policy(path)
    assert loaded.rungs == (
        RungName.WORKSPACE_OVERRIDE,
        RungName.DERIVED_PROVIDER,
        RungName.DEPLOYMENT_DEFAULT,
    )


FRESH_KIMI = ResolutionInput(
    workspace_id="ws-fresh",
    org_default="platform_managed",
    runtime="claude-code",
    model="kimi-for-coding",
)


def test_2608_replay_a_policy_without_the_org_rung_derives_byok_for_a_fresh_workspace() -> None:
    registry = built_in_registry()
    p2b = compile_policy(policy(WITHOUT_ORG_RUNG), "p2b.yaml")
    assert resolve_billing_mode(FRESH_KIMI, registry).mode is BillingMode.PLATFORM_MANAGED
    proposed = resolve_billing_mode(FRESH_KIMI, registry, p2b)
    assert (proposed.mode, proposed.source) == (BillingMode.BYOK, DecisionSource.DERIVED_PROVIDER)


def test_trace_has_one_entry_per_policy_rung_in_policy_order() -> None:
    p2b = compile_policy(policy(WITHOUT_ORG_RUNG), "p2b.yaml")
    decision = resolve_billing_mode(FRESH_KIMI, built_in_registry(), p2b)
    assert [entry.rung.value for entry in decision.trace] == WITHOUT_ORG_RUNG


def test_decision_records_policy_and_registry_versions() -> None:
    registry = built_in_registry()
    p2b = compile_policy(policy(WITHOUT_ORG_RUNG), "p2b.yaml")
    record = resolve_billing_mode(FRESH_KIMI, registry, p2b).to_dict()
    assert record["versions"] == {"policy": p2b.version, "registry": registry.version}


def test_registry_version_is_null_when_the_registry_is_unavailable() -> None:
    assert resolve_billing_mode(FRESH_KIMI, None).versions.registry is None


OWN_KEY = compile_policy(policy(ALL_RUNGS, own_key_wins_over_org_default=True), "own-key.yaml")


def test_own_key_option_lets_a_present_vendor_credential_beat_the_org_default() -> None:
    inputs = ResolutionInput(
        workspace_id="ws-1",
        org_default="platform_managed",
        runtime="claude-code",
        model="kimi-for-coding",
        auth_env=frozenset({"KIMI_API_KEY"}),
    )
    decision = resolve_billing_mode(inputs, built_in_registry(), OWN_KEY)
    assert (decision.mode, decision.source) == (BillingMode.BYOK, DecisionSource.DERIVED_PROVIDER)
    assert decision.trace[1].status is RungStatus.SKIPPED
    assert "own_key_wins_over_org_default" in decision.trace[1].why


def test_own_key_option_keeps_the_org_default_without_a_credential() -> None:
    decision = resolve_billing_mode(FRESH_KIMI, built_in_registry(), OWN_KEY)
    assert (decision.mode, decision.source) == (
        BillingMode.PLATFORM_MANAGED,
        DecisionSource.ORG_DEFAULT,
    )


def test_own_key_option_ignores_a_credential_of_another_provider() -> None:
    inputs = ResolutionInput(
        workspace_id="ws-1",
        org_default="platform_managed",
        runtime="claude-code",
        model="kimi-for-coding",
        auth_env=frozenset({"OPENAI_API_KEY"}),
    )
    decision = resolve_billing_mode(inputs, built_in_registry(), OWN_KEY)
    assert decision.source is DecisionSource.ORG_DEFAULT


def test_own_key_option_does_not_let_the_platform_provider_beat_the_org_default() -> None:
    inputs = ResolutionInput(
        workspace_id="ws-1",
        org_default="byok",
        runtime="codex",
        model="openai/gpt-5.4",
        auth_env=frozenset({"OPENAI_API_KEY"}),
    )
    decision = resolve_billing_mode(inputs, built_in_registry(), OWN_KEY)
    assert (decision.mode, decision.source) == (BillingMode.BYOK, DecisionSource.ORG_DEFAULT)
