"""The what-if's danger classes as a table, and ``starts_paying`` as a property: a workspace is
counted as starting to pay exactly when it is ``disabled`` today and the proposal gives it a
paying mode (``platform_managed`` or ``byok``)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from tests.strategies import PolicyTriple, policies, resolution_inputs

from llmbilling import CONTRACT_POLICY, ResolutionInput, built_in_registry, compile_policy
from llmbilling.core.modes import BillingMode
from llmbilling.core.whatif import Configuration, DangerClass, WhatIfTally, compare

REGISTRY = built_in_registry()
CURRENT = Configuration(CONTRACT_POLICY, REGISTRY)
NO_OVERRIDE_RUNG = Configuration(
    compile_policy({"rungs": ["org_default", "derived_provider", "deployment_default"]}, "p"),
    REGISTRY,
)
NO_ORG_RUNG = Configuration(
    compile_policy(
        {"rungs": ["workspace_override", "derived_provider", "deployment_default"]}, "p"
    ),
    REGISTRY,
)


def workspace(**fields: Any) -> ResolutionInput:
    return ResolutionInput(**{"workspace_id": "ws", "runtime": "claude-code", **fields})


KIMI_KEY = frozenset({"KIMI_API_KEY"})
STARTS, NO_PROXY, TO_BYOK = (
    DangerClass.STARTS_PAYING,
    DangerClass.TO_PLATFORM_WITHOUT_PROXY,
    DangerClass.TO_BYOK_WITHOUT_CREDENTIAL,
)


@pytest.mark.parametrize(
    ("inputs", "current", "proposed", "dangers"),
    [
        pytest.param(
            workspace(override="disabled", org_default="platform_managed", model="kimi-for-coding"),
            CURRENT, NO_OVERRIDE_RUNG, (STARTS,), id="disabled-to-platform-with-proxy",
        ),
        pytest.param(
            workspace(
                override="disabled", org_default="platform_managed", model="kimi-for-coding",
                proxy_configured=False,
            ),
            CURRENT, NO_OVERRIDE_RUNG, (NO_PROXY, STARTS), id="disabled-to-platform-self-host",
        ),
        pytest.param(
            workspace(override="disabled", model="kimi-for-coding", auth_env=KIMI_KEY),
            CURRENT, NO_OVERRIDE_RUNG, (STARTS,), id="disabled-to-byok-with-its-key",
        ),
        pytest.param(
            workspace(override="disabled", model="kimi-for-coding"),
            CURRENT, NO_OVERRIDE_RUNG, (TO_BYOK, STARTS), id="disabled-to-byok-without-a-key",
        ),
        pytest.param(
            workspace(org_default="disabled", override="disabled", model="kimi-for-coding"),
            CURRENT, NO_ORG_RUNG, (), id="still-disabled",
        ),
        pytest.param(
            workspace(override="disabled", model="kimi-for-coding"),
            NO_OVERRIDE_RUNG, CURRENT, (DangerClass.TO_DISABLED,), id="paying-to-disabled",
        ),
        pytest.param(
            workspace(override="disabled", model="kimi-for-coding"),
            CURRENT, CURRENT, (), id="same-configuration",
        ),
    ],
)  # fmt: skip
def test_each_change_falls_in_its_danger_classes(
    inputs: ResolutionInput,
    current: Configuration,
    proposed: Configuration,
    dangers: tuple[DangerClass, ...],
) -> None:
    assert compare(inputs, current, proposed).change.dangers == dangers


PAYING = {BillingMode.PLATFORM_MANAGED, BillingMode.BYOK}


@settings(max_examples=400)
@given(inputs=resolution_inputs, current=policies, proposed=policies)
def test_a_workspace_starts_paying_iff_it_goes_from_disabled_to_a_paying_mode(
    inputs: ResolutionInput, current: PolicyTriple, proposed: PolicyTriple
) -> None:
    comparison = compare(
        inputs, Configuration(current[1], REGISTRY), Configuration(proposed[1], REGISTRY)
    )
    starts = comparison.current.mode is BillingMode.DISABLED and comparison.proposed.mode in PAYING
    assert (DangerClass.STARTS_PAYING in comparison.change.dangers) == starts


def test_starts_paying_is_counted_sampled_and_dangerous() -> None:
    tally = WhatIfTally(CURRENT, NO_OVERRIDE_RUNG, samples_per_class=2)
    woken = workspace(override="disabled", model="kimi-for-coding", auth_env=KIMI_KEY)
    for index in range(3):
        tally.add("org-a", f"ws-{index}", compare(woken, CURRENT, NO_OVERRIDE_RUNG).change)
    report = tally.report()
    assert report.dangers[STARTS] == 3
    assert report.danger_samples[STARTS] == ("ws-0", "ws-1")
    assert report.has_danger
    document = report.to_document()
    assert document["dangers"]["starts_paying"] == 3
    assert document["per_org"] == [
        {
            "org_id": "org-a",
            "workspaces": 3,
            "changed": 3,
            "mode_transitions": [{"from": "disabled", "to": "byok", "count": 3}],
            "dangers": {danger.value: 3 if danger is STARTS else 0 for danger in DangerClass},
        }
    ]
