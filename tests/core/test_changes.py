"""The pure engine of change previews: each side decided exactly as the resolver decides it, a
change that changes nothing moves nothing, and danger classes judged with each side's own
credential names and proxy."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from tests.strategies import (
    BUILT_IN,
    auth_env_names,
    mode_like_text,
    model_text,
    override_value,
    runtime_text,
)

from llmbilling.core.changes import (
    AnyChange,
    DeploymentChange,
    OrgDefaultChange,
    OverrideChange,
    SecretChange,
    StoredFacts,
    compare_facts,
    facts_after,
)
from llmbilling.core.decision import OverrideReadFailure
from llmbilling.core.policy import CONTRACT_POLICY
from llmbilling.core.resolve import resolve_billing_mode
from llmbilling.core.whatif import Configuration, DangerClass

TODAY = Configuration(CONTRACT_POLICY, BUILT_IN)
NOW = datetime(2030, 1, 1, tzinfo=UTC)

facts = st.builds(
    StoredFacts,
    override=override_value,
    override_expires_at=st.none(),
    org_default=st.none() | mode_like_text,
    runtime=runtime_text,
    model=model_text,
    workspace_secret_names=auth_env_names,
    org_secret_names=auth_env_names,
    proxy_configured=st.booleans(),
    deployment_org_default=st.none() | mode_like_text,
)
changes = st.one_of(
    st.builds(OverrideChange, st.just("w"), st.none() | st.sampled_from(["byok", "disabled"])),
    st.builds(OrgDefaultChange, st.just("o"), st.none() | mode_like_text),
    st.builds(
        SecretChange,
        st.sampled_from(["org", "workspace"]),
        st.just("x"),
        st.sampled_from(["ANTHROPIC_API_KEY", "KIMI_API_KEY", "OTHER"]),
        st.booleans(),
    ),
    st.builds(DeploymentChange, st.none() | st.booleans()),
)


@given(before=facts, change=changes)
def test_each_side_is_decided_as_the_resolver_decides_its_facts(
    before: StoredFacts, change: AnyChange
) -> None:
    after = facts_after(change, before)

    compared = compare_facts(before, after, NOW, TODAY, TODAY)

    for side, outcome in ((before, compared.before), (after, compared.after)):
        expected = resolve_billing_mode(side.resolution_input("w", NOW), BUILT_IN, CONTRACT_POLICY)
        assert outcome == expected.outcome


@given(before=facts)
def test_a_change_to_the_same_facts_moves_nothing(before: StoredFacts) -> None:
    change = compare_facts(before, before, NOW, TODAY, TODAY).change

    assert not change.mode_changed
    assert not change.source_changed
    assert change.dangers == ()


def _byok_on_kimi(names: frozenset[str], proxy: bool = True) -> StoredFacts:
    return StoredFacts(
        override="byok",
        override_expires_at=None,
        org_default=None,
        runtime="claude-code",
        model="kimi-for-coding",
        workspace_secret_names=names,
        org_secret_names=frozenset(),
        proxy_configured=proxy,
        deployment_org_default=None,
    )


def test_deleting_the_only_credential_is_to_byok_without_credential() -> None:
    before = _byok_on_kimi(frozenset({"KIMI_API_KEY"}))
    after = facts_after(SecretChange("workspace", "w", "KIMI_API_KEY", present=False), before)

    compared = compare_facts(before, after, NOW, TODAY, TODAY)

    assert compared.change.dangers == (DangerClass.TO_BYOK_WITHOUT_CREDENTIAL,)
    assert compared.change.mode_transition == ("byok", "byok")


def test_removing_the_proxy_under_a_platform_workspace_is_to_platform_without_proxy() -> None:
    before = StoredFacts(
        override="platform_managed",
        override_expires_at=None,
        org_default=None,
        runtime="claude-code",
        model="kimi-for-coding",
        workspace_secret_names=frozenset(),
        org_secret_names=frozenset(),
        proxy_configured=True,
        deployment_org_default=None,
    )
    after = facts_after(DeploymentChange(proxy_configured=False), before)

    compared = compare_facts(before, after, NOW, TODAY, TODAY)

    assert compared.change.dangers == (DangerClass.TO_PLATFORM_WITHOUT_PROXY,)


def test_an_unreadable_state_stays_unreadable_whatever_is_written() -> None:
    unreadable = dataclasses.replace(
        _byok_on_kimi(frozenset()), override=OverrideReadFailure("SECRET_UNDECRYPTABLE: x")
    )

    assert facts_after(OverrideChange("w", "disabled"), unreadable) == unreadable
    assert facts_after(DeploymentChange(proxy_configured=False), unreadable) != unreadable
