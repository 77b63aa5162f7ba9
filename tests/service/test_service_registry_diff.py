"""The stored fleet grouped for a registry diff (service/registry_diff.py), on SQLite and
PostgreSQL: the read path's inputs, counted per (runtime, effective model, credentials)."""

from __future__ import annotations

from collections import Counter

from tests.store.db_fixtures import ContextFactory, stored_workspace

from llmbilling.config.registry import built_in_registry
from llmbilling.core.decision import OverrideReadFailure, ResolutionInput
from llmbilling.core.registry import CompiledRegistry, compile_registry
from llmbilling.core.registry_diff import FleetKey
from llmbilling.service import admin, secrets
from llmbilling.service.context import ServiceContext
from llmbilling.service.registry_diff import fleet_groups, group_inputs
from llmbilling.store.crypto import KeyRing

REGISTRIES = (built_in_registry(),)


def test_workspaces_with_the_same_runtime_model_and_credentials_form_one_group(
    context: ServiceContext,
) -> None:
    org_id, _ = stored_workspace(context, runtime="codex", model="gpt-5.5")
    admin.create_workspace(context, org_id, runtime="codex", model="gpt-5.5")
    keyed = admin.create_workspace(context, org_id, runtime="codex", model="gpt-5.5")
    secrets.set_secret(context, "workspace", keyed.id, "OPENAI_API_KEY", "sk-x")
    grouped = fleet_groups(context, REGISTRIES, org_id=org_id)
    assert grouped.groups == Counter[FleetKey](
        {
            ("codex", "gpt-5.5", frozenset()): 2,
            ("codex", "gpt-5.5", frozenset({"OPENAI_API_KEY"})): 1,
        }
    )
    assert (grouped.workspaces, grouped.unreadable) == (3, 0)


def test_secrets_that_are_no_registry_credential_do_not_split_a_group(
    context: ServiceContext,
) -> None:
    org_id, _ = stored_workspace(context, runtime="codex", model="gpt-5.5")
    other = admin.create_workspace(context, org_id, runtime="codex", model="gpt-5.5")
    secrets.set_secret(context, "workspace", other.id, "GITHUB_TOKEN", "ghp-x")
    grouped = fleet_groups(context, REGISTRIES, org_id=org_id)
    assert grouped.groups == Counter[FleetKey]({("codex", "gpt-5.5", frozenset()): 2})


def test_an_org_credential_counts_for_each_of_its_workspaces(context: ServiceContext) -> None:
    org_id, _ = stored_workspace(
        context, runtime="codex", model="gpt-5.5", org_secrets={"OPENAI_API_KEY": "sk-x"}
    )
    grouped = fleet_groups(context, REGISTRIES, org_id=org_id)
    assert grouped.groups == Counter[FleetKey](
        {("codex", "gpt-5.5", frozenset({"OPENAI_API_KEY"})): 1}
    )


def test_a_workspace_without_a_model_is_grouped_under_its_model_secret(
    context: ServiceContext,
) -> None:
    org_id, _ = stored_workspace(
        context, runtime="claude-code", model=None, workspace_secrets={"MOLECULE_MODEL": " opus "}
    )
    grouped = fleet_groups(context, REGISTRIES, org_id=org_id)
    assert grouped.groups == Counter[FleetKey]({("claude-code", "opus", frozenset()): 1})


def test_a_model_secret_that_cannot_be_decrypted_is_counted_unreadable_in_no_group(
    context: ServiceContext, make_context: ContextFactory
) -> None:
    org_id, _ = stored_workspace(
        context, runtime="claude-code", model=None, workspace_secrets={"MODEL": "opus"}
    )
    other_keys = make_context(key_ring_text=KeyRing.new_key_text(1))
    grouped = fleet_groups(other_keys, REGISTRIES, org_id=org_id)
    assert (grouped.groups, grouped.unreadable) == (Counter[FleetKey](), 1)


def with_org_key() -> CompiledRegistry:
    """The built-in registry where the openai provider also takes ``OPENAI_ORG_KEY``."""
    document = built_in_registry().to_document()
    openai = next(p for p in document["providers"] if p["id"] == "openai")
    openai["auth_env"].append("OPENAI_ORG_KEY")
    return compile_registry(document, "<with OPENAI_ORG_KEY>")


def test_grouping_keeps_the_credential_names_of_either_registry_only() -> None:
    inputs = [
        ResolutionInput(runtime="codex", model="gpt-5.5", auth_env=frozenset({"OPENAI_ORG_KEY"})),
        ResolutionInput(runtime="codex", model="gpt-5.5", auth_env=frozenset({"GITHUB_TOKEN"})),
    ]
    grouped = group_inputs(inputs, [built_in_registry(), with_org_key()])
    assert grouped.groups == Counter[FleetKey](
        {
            ("codex", "gpt-5.5", frozenset({"OPENAI_ORG_KEY"})): 1,
            ("codex", "gpt-5.5", frozenset()): 1,
        }
    )


def test_grouping_counts_unreadable_inputs_apart() -> None:
    inputs = [ResolutionInput(workspace_id="w", override=OverrideReadFailure("read failed"))]
    grouped = group_inputs(inputs, REGISTRIES)
    assert (grouped.groups, grouped.unreadable) == (Counter[FleetKey](), 1)
