"""``--preview`` on every decision-input write, then ``llmbilling plan show|approve|apply``,
through the real console script on both engines (spec: issue 15, items 1-4)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select
from tests.cli.cli_runner import SENTINEL, Cli
from tests.store.db_fixtures import KEY_RING_TEXT

from llmbilling.cli.whatif_command import DANGER_EXIT_CODE
from llmbilling.store.engine import open_store
from llmbilling.store.tables import audit_log

PROXY = {
    "MOLECULE_LLM_BASE_URL": "https://proxy.example/v1",
    "MOLECULE_LLM_USAGE_TOKEN": "usage-token",
}
CONFLICT_EXIT_CODE = 1
USAGE_EXIT_CODE = 2
NOT_FOUND_EXIT_CODE = 6


@pytest.fixture
def cli(tmp_path: Path, engine_url: str) -> Cli:
    # The engine's session database (migrated); its secrets are sealed under the fixtures' ring.
    runner = Cli(tmp_path, with_store=False)
    runner.database_url = engine_url
    runner.key_ring = KEY_RING_TEXT
    return runner


def _org_with_workspace(cli: Cli, *, model: str = "claude-sonnet-4-5") -> tuple[str, str]:
    org_id = cli.ok("org", "create", "acme").strip()
    workspace_id = cli.ok("workspace", "create", "--org", org_id, "--model", model).strip()
    return org_id, workspace_id


def _plan_of(cli: Cli, *arguments: str, exit_code: int = 0) -> dict[str, Any]:
    result = cli.run(*arguments, "--preview", "--json")
    assert result.returncode == exit_code, result.stderr
    plan: dict[str, Any] = json.loads(result.stdout)
    return plan


def _error_line(result: Any) -> str:
    line: str = result.stderr.strip().splitlines()[-1]
    return line


def test_an_org_default_preview_writes_no_default_and_prints_the_plan_id(cli: Cli) -> None:
    org_id, _workspace = _org_with_workspace(cli)
    shown = cli.ok("org", "set-default", org_id, "byok", "--preview")
    plan_id = shown.splitlines()[0].split()[1]
    assert f"apply: llmbilling plan apply {plan_id}" in shown
    assert cli.json("org", "show", org_id)["llm_billing_mode_default"]["raw"] is None
    assert cli.json("plan", "show", plan_id)["status"] == "proposed"


def test_clearing_an_org_default_previews_the_clear_and_keeps_the_default(cli: Cli) -> None:
    org_id = cli.ok("org", "create", "acme", "--default", "disabled").strip()
    cli.ok("workspace", "create", "--org", org_id, "--model", "claude-sonnet-4-5")
    plan = _plan_of(cli, "org", "set-default", org_id, "--clear", exit_code=DANGER_EXIT_CODE)
    assert plan["change"] == {"kind": "org_default", "org_id": org_id, "mode": None}
    assert plan["preview"]["dangers"]["starts_paying"] == 1
    assert cli.json("org", "show", org_id)["llm_billing_mode_default"]["raw"] == "disabled"


def test_plan_show_says_who_proposed_it_and_how_to_apply_it(cli: Cli) -> None:
    _org, workspace_id = _org_with_workspace(cli)
    plan = _plan_of(cli, "workspace", "set-override", workspace_id, "byok", "--actor", "alice")
    shown = cli.ok("plan", "show", plan["id"]).splitlines()
    assert f"apply: llmbilling plan apply {plan['id']}" in shown
    assert any(line.startswith("proposed by alice at ") for line in shown)


def test_a_preview_lists_counts_transitions_and_each_moved_workspace_before_and_after(
    cli: Cli,
) -> None:
    org_id, workspace_id = _org_with_workspace(cli)
    plan = _plan_of(cli, "org", "set-default", org_id, "disabled", exit_code=DANGER_EXIT_CODE)
    preview = plan["preview"]
    assert (preview["total"], preview["changed"]) == (1, 1)
    assert {"from": "byok", "to": "disabled", "count": 1} in preview["mode_transitions"]
    [impact] = preview["impacts"]
    assert impact["workspace_id"] == workspace_id
    assert (impact["before"]["mode"], impact["after"]["mode"]) == ("byok", "disabled")
    assert impact["after"]["source"] == "org_default"


def test_a_dangerous_preview_exits_10_and_names_the_class_with_its_count_and_samples(
    cli: Cli,
) -> None:
    _org, workspace_id = _org_with_workspace(cli)
    result = cli.run("workspace", "set-override", workspace_id, "disabled", "--preview")
    assert result.returncode == DANGER_EXIT_CODE, result.stderr
    danger_line = next(line for line in result.stdout.splitlines() if "to_disabled" in line)
    assert danger_line.split()[:3] == ["to_disabled", "1", workspace_id]


def test_applying_a_plan_commits_exactly_its_change(cli: Cli) -> None:
    org_id, workspace_id = _org_with_workspace(cli)
    plan = _plan_of(cli, "org", "set-default", org_id, " BYOK")
    applied = json.loads(cli.ok("plan", "apply", plan["id"], "--json"))
    assert applied["status"] == "applied"
    assert cli.json("org", "show", org_id)["llm_billing_mode_default"]["raw"] == " BYOK"
    decision = cli.json("workspace", "show", workspace_id)["decision"]
    assert (decision["mode"], decision["source"]) == ("byok", "org_default")


def test_a_plan_whose_inputs_moved_is_refused_naming_them_and_changes_nothing(cli: Cli) -> None:
    org_id, _workspace = _org_with_workspace(cli)
    plan = _plan_of(cli, "org", "set-default", org_id, "byok")
    cli.ok("workspace", "create", "--org", org_id, "--model", "gpt-5.5")
    result = cli.run("plan", "apply", plan["id"])
    assert result.returncode == CONFLICT_EXIT_CODE
    assert _error_line(result).startswith("llmbilling: error: PLAN_STALE: ")
    assert "workspaces" in _error_line(result)
    assert cli.json("org", "show", org_id)["llm_billing_mode_default"]["raw"] is None


def test_a_plan_is_applied_once(cli: Cli) -> None:
    _org, workspace_id = _org_with_workspace(cli)
    plan = _plan_of(cli, "workspace", "clear-override", workspace_id)
    cli.ok("plan", "apply", plan["id"])
    result = cli.run("plan", "apply", plan["id"])
    assert result.returncode == CONFLICT_EXIT_CODE
    assert _error_line(result).startswith("llmbilling: error: PLAN_ALREADY_APPLIED: ")


def test_a_secret_set_preview_reads_no_value_and_its_apply_reads_it_from_stdin(cli: Cli) -> None:
    _org, workspace_id = _org_with_workspace(cli)
    arguments = ("secrets", "set", "ANTHROPIC_API_KEY", "--workspace", workspace_id)
    plan = _plan_of(cli, *arguments)
    [impact] = plan["preview"]["impacts"]
    assert (impact["before"]["provisioning"], impact["after"]["provisioning"]) == (
        "MISSING_BYOK_CREDENTIAL",
        "ok",
    )
    assert cli.json("secrets", "list", "--workspace", workspace_id) == []
    applied = cli.run("plan", "apply", plan["id"], stdin=SENTINEL)
    assert applied.returncode == 0, applied.stderr
    assert SENTINEL not in applied.stdout + applied.stderr
    names = [info["name"] for info in cli.json("secrets", "list", "--workspace", workspace_id)]
    assert names == ["ANTHROPIC_API_KEY"]


def test_deleting_a_byok_workspaces_only_credential_previews_as_danger(cli: Cli) -> None:
    _org, workspace_id = _org_with_workspace(cli)
    arguments = ("secrets", "delete", "ANTHROPIC_API_KEY", "--workspace", workspace_id)
    cli.ok("secrets", "set", "ANTHROPIC_API_KEY", "--workspace", workspace_id, stdin=SENTINEL)
    plan = _plan_of(cli, *arguments, exit_code=DANGER_EXIT_CODE)
    assert plan["preview"]["dangers"]["to_byok_without_credential"] == 1
    cli.ok("plan", "apply", plan["id"])
    assert cli.json("secrets", "list", "--workspace", workspace_id) == []


def test_an_org_secret_delete_preview_covers_every_workspace_of_the_org(cli: Cli) -> None:
    org_id, _first = _org_with_workspace(cli)
    cli.ok("workspace", "create", "--org", org_id, "--model", "claude-sonnet-4-5")
    cli.ok("secrets", "set", "ANTHROPIC_API_KEY", "--org", org_id, stdin=SENTINEL)
    arguments = ("secrets", "delete", "ANTHROPIC_API_KEY", "--org", org_id)
    plan = _plan_of(cli, *arguments, exit_code=DANGER_EXIT_CODE)
    assert plan["scope"]["kind"] == "org"
    assert plan["preview"]["dangers"]["to_byok_without_credential"] == 2


def test_a_model_secret_has_no_preview(cli: Cli) -> None:
    _org, workspace_id = _org_with_workspace(cli)
    result = cli.run("secrets", "set", "MODEL", "--workspace", workspace_id, "--preview")
    assert result.returncode == USAGE_EXIT_CODE
    assert _error_line(result).startswith("llmbilling: error: INVALID_INPUT: name: MODEL ")


def test_a_preview_refuses_an_acknowledgement(cli: Cli) -> None:
    _org, workspace_id = _org_with_workspace(cli)
    result = cli.run(
        "workspace", "set-override", workspace_id, "disabled", "--preview", "--acknowledge",
        "to_disabled",
    )  # fmt: skip
    assert result.returncode == USAGE_EXIT_CODE
    assert "--acknowledge" in _error_line(result)


def test_a_guarded_deployment_refuses_an_unacknowledged_dangerous_write(cli: Cli) -> None:
    cli.proxy = {"LLMBILLING_GUARD_DANGEROUS_WRITES": "true"}
    _org, workspace_id = _org_with_workspace(cli)
    result = cli.run("workspace", "set-override", workspace_id, "disabled")
    assert result.returncode == CONFLICT_EXIT_CODE
    assert _error_line(result).startswith("llmbilling: error: DANGER_NOT_ACKNOWLEDGED: ")
    assert "to_disabled (1)" in _error_line(result)
    assert cli.json("workspace", "show", workspace_id)["workspace"]["llm_billing_mode"] is None


def test_a_guarded_deployment_writes_once_each_class_is_acknowledged(cli: Cli) -> None:
    cli.proxy = {"LLMBILLING_GUARD_DANGEROUS_WRITES": "true"}
    _org, workspace_id = _org_with_workspace(cli)
    cli.ok("workspace", "set-override", workspace_id, "disabled", "--acknowledge", "to_disabled")
    assert cli.json("workspace", "show", workspace_id)["decision"]["mode"] == "disabled"


def test_a_guarded_deployment_applies_a_dangerous_plan_only_acknowledged(cli: Cli) -> None:
    cli.proxy = {"LLMBILLING_GUARD_DANGEROUS_WRITES": "true"}
    _org, workspace_id = _org_with_workspace(cli)
    arguments = ("workspace", "set-override", workspace_id, "disabled")
    plan = _plan_of(cli, *arguments, exit_code=DANGER_EXIT_CODE)
    refused = cli.run("plan", "apply", plan["id"])
    assert _error_line(refused).startswith("llmbilling: error: DANGER_NOT_ACKNOWLEDGED: ")
    cli.ok("plan", "apply", plan["id"], "--acknowledge", "to_disabled")
    assert cli.json("workspace", "show", workspace_id)["decision"]["mode"] == "disabled"


def test_an_unknown_danger_class_is_refused_naming_the_classes(cli: Cli) -> None:
    _org, workspace_id = _org_with_workspace(cli)
    result = cli.run("workspace", "set-override", workspace_id, "byok", "--acknowledge", "nope")
    assert result.returncode == USAGE_EXIT_CODE
    assert "acknowledge_dangers: 'nope' is not a danger class" in _error_line(result)
    assert "to_disabled" in _error_line(result)


def test_a_dangerous_plan_waits_for_a_second_admin_when_the_deployment_asks(cli: Cli) -> None:
    cli.proxy = {"LLMBILLING_DANGEROUS_PLANS_NEED_APPROVAL": "true"}
    _org, workspace_id = _org_with_workspace(cli)
    arguments = ("workspace", "set-override", workspace_id, "disabled", "--actor", "alice")
    plan = _plan_of(cli, *arguments, exit_code=DANGER_EXIT_CODE)
    assert plan["needs_approval"] is True
    refused = cli.run("plan", "apply", plan["id"], "--actor", "alice")
    assert _error_line(refused).startswith("llmbilling: error: PLAN_NEEDS_APPROVAL: ")
    cli.ok("plan", "approve", plan["id"], "--actor", "bob")
    applied = json.loads(cli.ok("plan", "apply", plan["id"], "--actor", "alice", "--json"))
    assert (applied["proposed_by"], applied["approved_by"], applied["applied_by"]) == (
        "alice",
        "bob",
        "alice",
    )


def test_the_proposer_cannot_approve_their_own_plan(cli: Cli) -> None:
    cli.proxy = {"LLMBILLING_DANGEROUS_PLANS_NEED_APPROVAL": "true"}
    _org, workspace_id = _org_with_workspace(cli)
    arguments = ("workspace", "set-override", workspace_id, "disabled", "--actor", "alice")
    plan = _plan_of(cli, *arguments, exit_code=DANGER_EXIT_CODE)
    result = cli.run("plan", "approve", plan["id"], "--actor", "alice")
    assert result.returncode == CONFLICT_EXIT_CODE
    assert _error_line(result).startswith("llmbilling: error: PLAN_SELF_APPROVAL: ")


def test_an_unknown_plan_is_not_found(cli: Cli) -> None:
    result = cli.run("plan", "show", "00000000-0000-4000-8000-000000000000")
    assert result.returncode == NOT_FOUND_EXIT_CODE
    assert _error_line(result).startswith("llmbilling: error: PLAN_NOT_FOUND: ")


def test_whatif_previews_turning_the_proxy_off_for_one_org(cli: Cli) -> None:
    cli.proxy = PROXY
    org_id, workspace_id = _org_with_workspace(cli, model="gpt-5.5")
    result = cli.run("whatif", "--no-proxy-configured", "--org", org_id, "--json")
    assert result.returncode == DANGER_EXIT_CODE, result.stderr
    preview = json.loads(result.stdout)
    assert preview["change"] == {"kind": "deployment", "proxy_configured": False}
    assert preview["scope"] == {"kind": "org", "org_id": org_id, "workspace_id": None}
    assert [impact["workspace_id"] for impact in preview["impacts"]] == [workspace_id]


def test_whatif_previews_an_env_org_default(cli: Cli) -> None:
    org_id, _workspace = _org_with_workspace(cli)
    result = cli.run("whatif", "--env-org-default", "disabled", "--org", org_id, "--json")
    assert result.returncode == DANGER_EXIT_CODE, result.stderr
    assert json.loads(result.stdout)["dangers"]["to_disabled"] == 1


def _reasons_by_action(cli: Cli, workspace_id: str) -> dict[str, object]:
    store = open_store(cli.database_url)
    try:
        with store.engine.connect() as connection:
            rows = connection.execute(
                select(audit_log.c.action, audit_log.c.after).where(
                    audit_log.c.workspace_id == UUID(workspace_id)
                )
            )
            return {action: (after or {}).get("reason") for action, after in rows}
    finally:
        store.close()


def test_plan_apply_keeps_its_reason_with_the_write_and_the_plan(cli: Cli) -> None:
    _org, workspace_id = _org_with_workspace(cli)
    plan = _plan_of(cli, "workspace", "set-override", workspace_id, "byok")

    cli.ok("plan", "apply", plan["id"], "--reason", "ticket 15")

    reasons = _reasons_by_action(cli, workspace_id)
    assert reasons["workspace.override_set"] == reasons["plan.applied"] == "ticket 15"


def test_a_guarded_deployment_refuses_an_unacknowledged_dangerous_secret_delete(cli: Cli) -> None:
    cli.proxy = {"LLMBILLING_GUARD_DANGEROUS_WRITES": "true"}
    _org, workspace_id = _org_with_workspace(cli)
    cli.ok("secrets", "set", "ANTHROPIC_API_KEY", "--workspace", workspace_id, stdin=SENTINEL)

    result = cli.run("secrets", "delete", "ANTHROPIC_API_KEY", "--workspace", workspace_id)

    assert result.returncode == CONFLICT_EXIT_CODE
    assert "DANGER_NOT_ACKNOWLEDGED" in _error_line(result)
    assert "to_byok_without_credential (1)" in _error_line(result)
    names = [info["name"] for info in cli.json("secrets", "list", "--workspace", workspace_id)]
    assert names == ["ANTHROPIC_API_KEY"]


def test_a_guarded_deployment_deletes_an_acknowledged_dangerous_secret(cli: Cli) -> None:
    cli.proxy = {"LLMBILLING_GUARD_DANGEROUS_WRITES": "true"}
    _org, workspace_id = _org_with_workspace(cli)
    cli.ok("secrets", "set", "ANTHROPIC_API_KEY", "--workspace", workspace_id, stdin=SENTINEL)

    cli.ok(
        "secrets", "delete", "ANTHROPIC_API_KEY", "--workspace", workspace_id,
        "--acknowledge", "to_byok_without_credential",
    )  # fmt: skip

    assert cli.json("secrets", "list", "--workspace", workspace_id) == []


def test_a_guarded_deployment_sets_a_harmless_secret_without_acknowledgement(cli: Cli) -> None:
    cli.proxy = {"LLMBILLING_GUARD_DANGEROUS_WRITES": "true"}
    _org, workspace_id = _org_with_workspace(cli)

    cli.ok("secrets", "set", "ANTHROPIC_API_KEY", "--workspace", workspace_id, stdin=SENTINEL)

    names = [info["name"] for info in cli.json("secrets", "list", "--workspace", workspace_id)]
    assert names == ["ANTHROPIC_API_KEY"]
