"""A decision as OFREP flags (``core/ofrep.py``): every flag of every decision is a valid
OFREP evaluation, and carries the record's own facts."""

from __future__ import annotations

import pytest
from hypothesis import given
from tests.api.ofrep_document import problems_of
from tests.strategies import DECIDING_RUNG, registries, resolution_inputs

from llmbilling.core.decision import BillingDecision, ResolutionInput
from llmbilling.core.modes import DecisionSource
from llmbilling.core.ofrep import (
    FLAG_KEYS,
    MODE_FLAG,
    PROVIDER_FLAG,
    REASON_BY_SOURCE,
    WOULD_PROVISION_FLAG,
    Reason,
    evaluate_all,
    evaluate_flag,
    unknown_flag,
)
from llmbilling.core.policy import CONTRACT_POLICY
from llmbilling.core.registry import CompiledRegistry
from llmbilling.core.resolve import resolve_billing_mode


def _decide(inputs: ResolutionInput, registry: CompiledRegistry | None) -> BillingDecision:
    return resolve_billing_mode(inputs, registry, CONTRACT_POLICY)


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (DecisionSource.WORKSPACE_OVERRIDE, Reason.TARGETING_MATCH),
        (DecisionSource.ORG_DEFAULT, Reason.TARGETING_MATCH),
        (DecisionSource.DERIVED_PROVIDER, Reason.TARGETING_MATCH),
        (DecisionSource.DERIVED_DEFAULT, Reason.STATIC),
        (DecisionSource.CONSTANT_FALLBACK, Reason.UNKNOWN),
    ],
)
def test_each_decision_source_has_one_ofrep_reason(source: DecisionSource, reason: Reason) -> None:
    assert REASON_BY_SOURCE[source] is reason


def test_every_decision_source_is_mapped() -> None:
    assert set(REASON_BY_SOURCE) == set(DecisionSource)


@given(resolution_inputs, registries)
def test_every_flag_of_every_decision_is_a_valid_ofrep_evaluation(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    for evaluation in evaluate_all(_decide(inputs, registry)):
        assert problems_of("serverEvaluationSuccess", evaluation.to_dict()) == []


@given(resolution_inputs, registries)
def test_the_mode_flag_is_the_decided_mode_and_its_metadata_the_record(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    decision = _decide(inputs, registry)
    record = decision.to_dict()
    wire = evaluate_flag(MODE_FLAG, decision).to_dict()
    metadata = wire["metadata"]
    assert (wire["value"], wire["variant"]) == (record["mode"], record["mode"])
    assert wire["reason"] == REASON_BY_SOURCE[decision.source].value
    assert isinstance(metadata, dict)
    assert metadata["source"] == record["source"]
    assert metadata["rung"] == DECIDING_RUNG[record["source"]]
    assert metadata.get("provider") == record["provider"]
    assert metadata["derivationOutcome"] == record["derivation"]["outcome"]
    assert metadata.get("errorCode") == (record["error"] or {}).get("code")
    assert metadata["policyVersion"] == record["versions"]["policy"]
    assert metadata.get("registryVersion") == record["versions"]["registry"]
    assert metadata["provisioningStatus"] == record["provisioning"]["status"]


@given(resolution_inputs, registries)
def test_the_provider_flag_has_a_value_only_when_derivation_succeeded(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    decision = _decide(inputs, registry)
    wire = evaluate_flag(PROVIDER_FLAG, decision).to_dict()
    if decision.derivation.outcome.value == "ok":
        assert (wire["value"], wire["variant"]) == (decision.provider, decision.provider)
    else:
        assert "value" not in wire
        assert wire["variant"] == "none"


@given(resolution_inputs, registries)
def test_the_would_provision_flag_is_the_provisioning_verdict(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    decision = _decide(inputs, registry)
    wire = evaluate_flag(WOULD_PROVISION_FLAG, decision).to_dict()
    assert wire["value"] is decision.provisioning.ok
    assert wire["variant"] == decision.provisioning.status.value


def test_an_unknown_flag_is_flag_not_found_naming_the_flags_served() -> None:
    failure = unknown_flag("dark-mode").to_dict("dark-mode")
    assert problems_of("flagNotFound", failure) == []
    assert failure["errorCode"] == "FLAG_NOT_FOUND"
    assert all(key in str(failure["errorDetails"]) for key in FLAG_KEYS)
