"""The provisioning verdict beside a decision (item 1), judged by names only, in the order
provisioning checks: registry, model, then the mode's own need."""

from __future__ import annotations

import pytest

from llmbilling.config.registry import built_in_registry
from llmbilling.core.decision import ProvisioningStatus, ResolutionInput
from llmbilling.core.resolve import resolve_billing_mode

REGISTRY = built_in_registry()
OK = ProvisioningStatus.OK


@pytest.mark.parametrize(
    ("override", "model", "auth_env", "proxy", "status", "provider", "names"),
    [
        ("platform_managed", "claude-opus-4-7", set(), True, OK, None, ()),
        (
            "platform_managed",
            "claude-opus-4-7",
            set(),
            False,
            ProvisioningStatus.MISSING_PLATFORM_PROXY,
            None,
            (),
        ),
        ("disabled", "claude-opus-4-7", set(), False, OK, None, ()),
        ("disabled", None, set(), True, ProvisioningStatus.MISSING_MODEL, None, ()),
        ("platform_managed", "  ", set(), False, ProvisioningStatus.MISSING_MODEL, None, ()),
        ("byok", "claude-opus-4-7", {"ANTHROPIC_API_KEY"}, True, OK, None, ()),
        (
            "byok",
            "claude-opus-4-7",
            {"GITHUB_TOKEN"},
            True,
            ProvisioningStatus.MISSING_BYOK_CREDENTIAL,
            None,
            None,
        ),
        (
            None,
            "MiniMax-M2",
            set(),
            True,
            ProvisioningStatus.MISSING_BYOK_CREDENTIAL,
            "minimax",
            ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "MINIMAX_API_KEY"),
        ),
        (None, "MiniMax-M2", {"MINIMAX_API_KEY"}, True, OK, None, ()),
    ],
    ids=[
        "platform-with-proxy",
        "platform-without-proxy",
        "disabled-needs-nothing-but-a-model",
        "no-model",
        "blank-model-is-none",
        "byok-any-vendor-credential",
        "byok-without-any-vendor-credential",
        "byok-derived-vendor-without-its-credential",
        "byok-derived-vendor-with-its-credential",
    ],
)
def test_the_verdict_names_what_provisioning_would_fail_with(
    override: str | None,
    model: str | None,
    auth_env: set[str],
    proxy: bool,
    status: ProvisioningStatus,
    provider: str | None,
    names: tuple[str, ...] | None,
) -> None:
    inputs = ResolutionInput(
        workspace_id="ws-1",
        override=override,
        runtime="claude-code",
        model=model,
        auth_env=frozenset(auth_env),
        proxy_configured=proxy,
    )
    verdict = resolve_billing_mode(inputs, REGISTRY).provisioning
    assert (verdict.status, verdict.provider) == (status, provider)
    if names is None:  # any vendor's credential would do
        assert set(verdict.satisfied_by) == REGISTRY.vendor_auth_env
    else:
        assert verdict.satisfied_by == names


def test_the_record_carries_the_verdict_in_its_one_serialization() -> None:
    inputs = ResolutionInput(
        workspace_id="ws-1", override="platform_managed", model="m", proxy_configured=False
    )
    record = resolve_billing_mode(inputs, REGISTRY).to_dict()
    assert record["provisioning"] == {
        "status": "MISSING_PLATFORM_PROXY",
        "provider": None,
        "satisfied_by": [],
    }


def test_a_decision_without_a_registry_cannot_be_provisioned() -> None:
    inputs = ResolutionInput(workspace_id="ws-1", override="disabled", model="m")
    verdict = resolve_billing_mode(inputs, None).provisioning
    assert verdict.status is ProvisioningStatus.REGISTRY_UNAVAILABLE
