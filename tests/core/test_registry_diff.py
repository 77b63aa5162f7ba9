"""Comparing two registries (core/registry_diff.py): document changes, and the probe inputs and
fleet groups that derive differently."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from llmbilling.core.modes import BillingMode, DerivationOutcome
from llmbilling.core.registry import CompiledRegistry, Rule, RuleKind, compile_registry
from llmbilling.core.registry_diff import (
    PROBE_SUFFIX,
    ChangeKind,
    DerivedMode,
    FleetKey,
    InputChange,
    derive_mode,
    diff_fleet,
    diff_registries,
    probe_models,
)

Edit = Callable[[dict[str, Any]], None]


def edited(registry: CompiledRegistry, edit: Edit) -> CompiledRegistry:
    """``registry`` with its document changed by ``edit``, compiled again."""
    document = registry.to_document()
    edit(document)
    return compile_registry(document, "<edited registry>")


def provider(document: dict[str, Any], provider_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(p for p in document["providers"] if p["id"] == provider_id)
    return found


def runtime(document: dict[str, Any], runtime_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in document["runtimes"] if r["id"] == runtime_id)
    return found


def groq_takes_llama(document: dict[str, Any]) -> None:
    provider(document, "groq")["pattern"] = "^(groq:|llama-)"


def openai_gains_a_credential(document: dict[str, Any]) -> None:
    provider(document, "openai")["auth_env"].append("OPENAI_ORG_KEY")


def codex_lists_openai_first(document: dict[str, Any]) -> None:
    natives = runtime(document, "codex")["providers"]
    natives[0], natives[1] = natives[1], natives[0]


def hermes_removed(document: dict[str, Any]) -> None:
    document["runtimes"] = [r for r in document["runtimes"] if r["id"] != "hermes"]


def unregistered(mode: BillingMode) -> DerivedMode:
    return DerivedMode(None, DerivationOutcome.UNREGISTERED_MODEL, mode)


def ok(provider_id: str, mode: BillingMode) -> DerivedMode:
    return DerivedMode(provider_id, DerivationOutcome.OK, mode)


def test_a_registry_compared_with_itself_has_no_changes(builtin: CompiledRegistry) -> None:
    diff = diff_registries(builtin, builtin, proxy_configured=True)
    assert not diff.has_changes
    assert not diff.mode_changed


def test_a_registry_compared_with_its_own_document_has_no_changes(
    builtin: CompiledRegistry,
) -> None:
    diff = diff_registries(builtin, edited(builtin, lambda _: None), proxy_configured=True)
    assert not diff.has_changes


def test_a_prefix_a_pattern_gains_is_a_rule_added_on_each_runtime_listing_the_provider(
    builtin: CompiledRegistry,
) -> None:
    diff = diff_registries(builtin, edited(builtin, groq_takes_llama), proxy_configured=True)
    listing = sorted(r for r, per_provider in builtin.rules.items() if "groq" in per_provider)
    assert [(c.runtime, c.provider, c.added, c.removed) for c in diff.rule_changes] == [
        (r, "groq", (Rule(RuleKind.PREFIX, "llama-"),), ()) for r in listing
    ]


def test_a_pattern_change_is_a_provider_field_change(builtin: CompiledRegistry) -> None:
    diff = diff_registries(builtin, edited(builtin, groq_takes_llama), proxy_configured=True)
    assert [c.to_dict("provider") for c in diff.provider_changes] == [
        {
            "provider": "groq",
            "change": "changed",
            "fields": {"pattern": {"old": "^groq:", "new": "^(groq:|llama-)"}},
        }
    ]


@pytest.mark.parametrize(
    ("proxy_configured", "old", "mode_changed"),
    [
        (True, unregistered(BillingMode.PLATFORM_MANAGED), True),
        (False, unregistered(BillingMode.BYOK), False),
    ],
)
def test_a_new_prefix_turns_its_probes_from_the_deployment_default_to_the_vendor(
    builtin: CompiledRegistry, proxy_configured: bool, old: DerivedMode, mode_changed: bool
) -> None:
    diff = diff_registries(
        builtin, edited(builtin, groq_takes_llama), proxy_configured=proxy_configured
    )
    new = ok("groq", BillingMode.BYOK)
    assert diff.input_changes == (
        InputChange("openclaw", "llama-", (), old, new),
        InputChange("openclaw", "llama-" + PROBE_SUFFIX, (), old, new),
    )
    assert diff.mode_changed is mode_changed


def test_a_change_credentials_cannot_affect_is_listed_once_without_credentials(
    builtin: CompiledRegistry,
) -> None:
    diff = diff_registries(builtin, edited(builtin, groq_takes_llama), proxy_configured=True)
    assert {change.auth_env for change in diff.input_changes} == {()}


def test_an_added_credential_name_is_a_provider_change_and_no_rule_or_mode_change(
    builtin: CompiledRegistry,
) -> None:
    diff = diff_registries(
        builtin, edited(builtin, openai_gains_a_credential), proxy_configured=True
    )
    assert [c.to_dict("provider") for c in diff.provider_changes] == [
        {
            "provider": "openai",
            "change": "changed",
            "fields": {
                "auth_env": {
                    "old": ["OPENAI_API_KEY"],
                    "new": ["OPENAI_API_KEY", "OPENAI_ORG_KEY"],
                    "added": ["OPENAI_ORG_KEY"],
                    "removed": [],
                }
            },
        }
    ]
    assert diff.rule_changes == ()
    assert not diff.mode_changed


def test_a_tie_an_added_credential_name_alone_now_splits_is_probed(
    builtin: CompiledRegistry,
) -> None:
    diff = diff_registries(
        builtin, edited(builtin, openai_gains_a_credential), proxy_configured=True
    )
    subscription, api = ok("openai-subscription", BillingMode.BYOK), ok("openai", BillingMode.BYOK)
    assert InputChange("codex", "gpt-5.5", ("OPENAI_ORG_KEY",), subscription, api) in (
        diff.input_changes
    )
    assert {change.auth_env for change in diff.input_changes} == {("OPENAI_ORG_KEY",)}


def test_a_native_provider_order_change_is_a_runtime_change_and_moves_exact_id_ties(
    builtin: CompiledRegistry,
) -> None:
    diff = diff_registries(
        builtin, edited(builtin, codex_lists_openai_first), proxy_configured=True
    )
    assert [(c.id, c.change, [f.field for f in c.fields]) for c in diff.runtime_changes] == [
        ("codex", ChangeKind.CHANGED, ["native_providers"])
    ]
    assert diff.rule_changes == ()
    subscription, api = ok("openai-subscription", BillingMode.BYOK), ok("openai", BillingMode.BYOK)
    assert InputChange("codex", "gpt-5.5", (), subscription, api) in diff.input_changes


def test_a_removed_runtime_sends_its_vendor_ids_to_the_deployment_default(
    builtin: CompiledRegistry,
) -> None:
    diff = diff_registries(builtin, edited(builtin, hermes_removed), proxy_configured=True)
    assert [(c.id, c.change) for c in diff.runtime_changes] == [("hermes", ChangeKind.REMOVED)]
    gone = DerivedMode(None, DerivationOutcome.UNKNOWN_RUNTIME, BillingMode.PLATFORM_MANAGED)
    assert InputChange("hermes", "openrouter:x", (), ok("openrouter", BillingMode.BYOK), gone) in (
        diff.input_changes
    )
    assert {change.runtime for change in diff.input_changes} == {"hermes"}


def test_an_added_provider_lists_its_fields_as_new(make_registry: Callable[..., Any]) -> None:
    acme = {"id": "acme", "name": "Acme", "auth_env": ["ACME_KEY"], "pattern": "^acme-"}
    diff = diff_registries(make_registry(), make_registry(acme), proxy_configured=True)
    assert [c.to_dict("provider") for c in diff.provider_changes] == [
        {
            "provider": "acme",
            "change": "added",
            "fields": {
                "name": {"old": None, "new": "Acme"},
                "platform": {"old": None, "new": False},
                "auth_env": {
                    "old": None,
                    "new": ["ACME_KEY"],
                    "added": ["ACME_KEY"],
                    "removed": [],
                },
                "endpoint_env": {"old": None, "new": [], "added": [], "removed": []},
                "pattern": {"old": None, "new": "^acme-"},
            },
        }
    ]


def test_probes_are_every_rule_text_and_each_prefix_with_the_suffix(
    make_registry: Callable[..., Any],
) -> None:
    acme = {"id": "acme", "name": "Acme", "auth_env": ["ACME_KEY"], "pattern": "^(acme-|Zed$)"}
    assert probe_models([make_registry(acme)]) == [
        "acme-",
        "acme-" + PROBE_SUFFIX,
        "platform/",
        "platform/" + PROBE_SUFFIX,
        "zed",
    ]


@pytest.mark.parametrize(
    ("runtime_id", "model", "auth_env", "proxy_configured", "expected"),
    [
        ("codex", "platform/x", (), True, ok("platform", BillingMode.PLATFORM_MANAGED)),
        ("codex", "gpt-5.5", (), False, ok("openai-subscription", BillingMode.BYOK)),
        ("codex", "made-up", (), True, unregistered(BillingMode.PLATFORM_MANAGED)),
        ("codex", "made-up", (), False, unregistered(BillingMode.BYOK)),
        (
            "claude-code",
            "opus",
            (),
            True,
            DerivedMode(None, DerivationOutcome.AMBIGUOUS_MODEL, BillingMode.PLATFORM_MANAGED),
        ),
        (
            "claude-code",
            "opus",
            ("CLAUDE_CODE_OAUTH_TOKEN",),
            True,
            ok("anthropic-oauth", BillingMode.BYOK),
        ),
    ],
)
def test_the_derived_mode_is_platform_for_the_platform_byok_for_a_vendor_else_the_default(
    builtin: CompiledRegistry,
    runtime_id: str,
    model: str,
    auth_env: tuple[str, ...],
    proxy_configured: bool,
    expected: DerivedMode,
) -> None:
    derived = derive_mode(
        builtin, runtime_id, model, frozenset(auth_env), proxy_configured=proxy_configured
    )
    assert derived == expected


FLEET: dict[FleetKey, int] = {
    ("openclaw", "llama-3", frozenset()): 2,
    ("openclaw", "llama-3", frozenset({"GROQ_API_KEY"})): 5,
    ("codex", "gpt-5.5", frozenset({"OPENAI_API_KEY"})): 7,
    (None, None, frozenset()): 1,
}


def test_the_fleet_diff_counts_groups_and_workspaces(builtin: CompiledRegistry) -> None:
    fleet = diff_fleet(builtin, edited(builtin, groq_takes_llama), FLEET, proxy_configured=True)
    assert (fleet.groups, fleet.workspaces, fleet.changed_workspaces) == (4, 15, 7)


def test_the_fleet_groups_that_derive_differently_come_most_workspaces_first(
    builtin: CompiledRegistry,
) -> None:
    fleet = diff_fleet(builtin, edited(builtin, groq_takes_llama), FLEET, proxy_configured=True)
    old, new = unregistered(BillingMode.PLATFORM_MANAGED), ok("groq", BillingMode.BYOK)
    assert [(c.change, c.workspaces) for c in fleet.changes] == [
        (InputChange("openclaw", "llama-3", ("GROQ_API_KEY",), old, new), 5),
        (InputChange("openclaw", "llama-3", (), old, new), 2),
    ]
    assert fleet.mode_changed


def test_a_fleet_whose_mode_stays_does_not_count_as_a_mode_change(
    builtin: CompiledRegistry,
) -> None:
    fleet = diff_fleet(builtin, edited(builtin, groq_takes_llama), FLEET, proxy_configured=False)
    assert fleet.changed_workspaces == 7
    assert not fleet.mode_changed
    assert fleet.mode_changed_workspaces == 0
