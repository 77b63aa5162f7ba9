"""Property tests: every invariant of spec §2 and the decision record, over any input.

Inputs mix the real vocabulary (modes, registry runtimes and model ids, auth env names) with
case changes, white space (ASCII and Unicode), garbling and random text: the everyday strategies
of ``tests/strategies.py``.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.strategies import (
    BUILT_IN,
    BUILT_IN_TWIN,
    DECIDING_RUNG,
    cased,
    mode_like_text,
    mode_word,
    normalized_org_default,
    registries,
    resolution_inputs,
)

from llmbilling.core.decision import BillingDecision, OverrideReadFailure, ResolutionInput
from llmbilling.core.derivation import derive_provider
from llmbilling.core.modes import ASCII_WHITE_SPACE, MODE_VALUES
from llmbilling.core.registry import CompiledRegistry
from llmbilling.core.resolve import resolve_billing_mode

RUNGS = ["workspace_override", "org_default", "derived_provider", "deployment_default"]
DERIVATION_FAILURES = {
    "no_model",
    "unknown_runtime",
    "unregistered_model",
    "ambiguous_model",
    "registry_unavailable",
}

invariant = settings(max_examples=300, deadline=None)


def resolve(inputs: ResolutionInput, registry: CompiledRegistry | None) -> BillingDecision:
    return resolve_billing_mode(inputs, registry)


def override_was_read(inputs: ResolutionInput) -> bool:
    return bool(inputs.workspace_id) and not isinstance(inputs.override, OverrideReadFailure)


def override_read_failed(inputs: ResolutionInput) -> bool:
    return bool(inputs.workspace_id) and isinstance(inputs.override, OverrideReadFailure)


# --- §2 invariants ---------------------------------------------------------------------------


@invariant
@given(inputs=resolution_inputs, registry=registries)
def test_decided_mode_is_always_one_of_the_three_modes(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    assert resolve(inputs, registry).to_dict()["mode"] in MODE_VALUES


@invariant
@given(inputs=resolution_inputs, registry=registries)
def test_byok_only_from_recognized_override_org_default_vendor_provider_or_self_host_default(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    record = resolve(inputs, registry).to_dict()
    if record["mode"] != "byok":
        return
    allowed = {
        "workspace_override": record["workspace_override"] == "byok",
        "org_default": record["org_default"]["recognized"] == "byok",
        "derived_provider": record["provider"] not in (None, "platform"),
        "derived_default": not inputs.proxy_configured,
        "constant_fallback": not inputs.proxy_configured,
    }
    assert allowed[record["source"]]


@invariant
@given(inputs=resolution_inputs, registry=registries)
def test_byok_is_never_decided_by_an_error_on_saas(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    decision = resolve(inputs, registry)
    failed = decision.error is not None or decision.source.value in {
        "derived_default",
        "constant_fallback",
    }
    if inputs.proxy_configured and failed:
        assert decision.mode.value == "platform_managed"


@invariant
@given(inputs=resolution_inputs, registry=registries)
def test_disabled_only_from_a_recognized_override_or_org_default(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    decision = resolve(inputs, registry)
    if decision.mode.value == "disabled":
        assert decision.source.value in {"workspace_override", "org_default"}


@invariant
@given(inputs=resolution_inputs, registry=registries)
def test_resolution_is_pure_same_inputs_give_equal_decisions(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    twin = None if registry is None else BUILT_IN_TWIN
    same_inputs = ResolutionInput(
        workspace_id=inputs.workspace_id,
        override=inputs.override,
        org_default=inputs.org_default,
        runtime=inputs.runtime,
        model=inputs.model,
        auth_env=frozenset(inputs.auth_env),
        proxy_configured=inputs.proxy_configured,
    )

    first = resolve(inputs, registry)
    again = resolve(inputs, registry)
    from_twin = resolve(same_inputs, twin)

    assert first == again
    assert first.to_dict() == again.to_dict() == from_twin.to_dict()


@invariant
@given(inputs=resolution_inputs, registry=registries)
def test_an_error_never_prevents_a_decision(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    record = resolve(inputs, registry).to_dict()
    if record["error"] is not None:
        assert record["mode"] in MODE_VALUES
        assert record["source"] in DECIDING_RUNG
        assert record["error"]["code"]
        assert record["error"]["message"]


@invariant
@given(inputs=resolution_inputs, registry=registries)
def test_error_is_the_override_read_failure_or_the_unavailable_registry_and_nothing_else(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    record = resolve(inputs, registry).to_dict()
    expected = None
    if override_read_failed(inputs):
        expected = "OVERRIDE_READ_FAILED"
    elif record["derivation"]["outcome"] == "registry_unavailable":
        expected = "REGISTRY_UNAVAILABLE"
    assert (None if record["error"] is None else record["error"]["code"]) == expected


# --- the trace -------------------------------------------------------------------------------


@invariant
@given(inputs=resolution_inputs, registry=registries)
def test_trace_has_one_entry_per_rung_in_order(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    trace = resolve(inputs, registry).to_dict()["trace"]
    assert [entry["rung"] for entry in trace] == RUNGS
    assert all(entry["status"] in {"decided", "skipped", "failed"} for entry in trace)
    assert all(entry["why"] for entry in trace)


@invariant
@given(inputs=resolution_inputs, registry=registries)
def test_trace_has_exactly_one_decided_entry_on_the_rung_named_by_the_source(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    record = resolve(inputs, registry).to_dict()
    decided = [entry["rung"] for entry in record["trace"] if entry["status"] == "decided"]
    assert decided == [DECIDING_RUNG[record["source"]]]


@invariant
@given(inputs=resolution_inputs, registry=registries)
def test_trace_rungs_after_the_deciding_rung_are_skipped(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    statuses = [entry["status"] for entry in resolve(inputs, registry).to_dict()["trace"]]
    after = statuses[statuses.index("decided") + 1 :]
    assert all(status == "skipped" for status in after)


@invariant
@given(inputs=resolution_inputs, registry=registries)
def test_trace_fails_only_the_override_read_or_the_derivation(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    record = resolve(inputs, registry).to_dict()
    failed = {entry["rung"] for entry in record["trace"] if entry["status"] == "failed"}
    expected = set()
    if override_read_failed(inputs):
        expected.add("workspace_override")
    if record["derivation"]["outcome"] in DERIVATION_FAILURES:
        expected.add("derived_provider")
    assert failed == expected


# --- the record's fields agree with each other -----------------------------------------------


@invariant
@given(inputs=resolution_inputs, registry=registries)
def test_workspace_id_and_deployment_are_echoed(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    record = resolve(inputs, registry).to_dict()
    default_mode = "platform_managed" if inputs.proxy_configured else "byok"
    assert record["workspace_id"] == inputs.workspace_id
    assert record["deployment"] == {
        "proxy_configured": inputs.proxy_configured,
        "default_mode": default_mode,
    }


@invariant
@given(inputs=resolution_inputs, registry=registries)
def test_source_is_workspace_override_iff_a_recognized_override_is_recorded(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    record = resolve(inputs, registry).to_dict()
    assert (record["source"] == "workspace_override") == (record["workspace_override"] is not None)
    if record["workspace_override"] is not None:
        assert record["mode"] == record["workspace_override"]


@invariant
@given(inputs=resolution_inputs, registry=registries)
def test_override_is_recognized_only_when_read_with_a_workspace_id_and_exactly_a_mode(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    record = resolve(inputs, registry).to_dict()
    exact_mode = inputs.override if inputs.override in MODE_VALUES else None
    expected = exact_mode if override_was_read(inputs) else None
    assert record["workspace_override"] == expected


@invariant
@given(inputs=resolution_inputs, registry=registries)
def test_org_default_record_holds_the_raw_text_and_its_normalized_mode(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    record = resolve(inputs, registry).to_dict()
    assert record["org_default"] == {
        "raw": inputs.org_default,
        "recognized": normalized_org_default(inputs.org_default),
    }


@invariant
@given(inputs=resolution_inputs, registry=registries)
def test_org_default_decides_exactly_when_recognized_and_no_override_decided(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    record = resolve(inputs, registry).to_dict()
    reaches_org_rung = record["workspace_override"] is None and not override_read_failed(inputs)
    recognized = record["org_default"]["recognized"]
    assert (record["source"] == "org_default") == (reaches_org_rung and recognized is not None)
    if record["source"] == "org_default":
        assert record["mode"] == recognized


@invariant
@given(inputs=resolution_inputs, registry=registries)
def test_constant_fallback_iff_the_override_read_failed_with_a_workspace_id(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    record = resolve(inputs, registry).to_dict()
    assert (record["source"] == "constant_fallback") == override_read_failed(inputs)


@invariant
@given(inputs=resolution_inputs, registry=registries)
def test_derivation_not_attempted_iff_an_earlier_rung_decided_or_the_read_failed(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    record = resolve(inputs, registry).to_dict()
    earlier = record["source"] in {"workspace_override", "org_default", "constant_fallback"}
    assert (record["derivation"]["outcome"] == "not_attempted") == earlier


@invariant
@given(inputs=resolution_inputs, registry=registries)
def test_derivation_ok_iff_source_is_derived_provider_and_failure_iff_derived_default(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    record = resolve(inputs, registry).to_dict()
    outcome = record["derivation"]["outcome"]
    assert (outcome == "ok") == (record["source"] == "derived_provider")
    assert (outcome in DERIVATION_FAILURES) == (record["source"] == "derived_default")


@invariant
@given(inputs=resolution_inputs, registry=registries)
def test_derived_platform_provider_decides_platform_managed_and_vendors_byok(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    record = resolve(inputs, registry).to_dict()
    if record["source"] == "derived_provider":
        expected = "platform_managed" if record["provider"] == "platform" else "byok"
        assert record["mode"] == expected


@invariant
@given(inputs=resolution_inputs, registry=registries)
def test_provider_is_the_derived_id_or_the_raw_model_on_failure_else_null(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    record = resolve(inputs, registry).to_dict()
    outcome = record["derivation"]["outcome"]
    if outcome == "ok":
        assert registry is not None
        assert record["provider"] in registry.providers
    elif outcome in DERIVATION_FAILURES and inputs.model and inputs.model.strip():
        assert record["provider"] == inputs.model
    else:
        assert record["provider"] is None


@invariant
@given(inputs=resolution_inputs, registry=registries)
def test_attempted_derivation_in_the_record_agrees_with_a_direct_derivation(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    record = resolve(inputs, registry).to_dict()
    if record["derivation"]["outcome"] == "not_attempted":
        return
    direct = derive_provider(registry, inputs.runtime, inputs.model, inputs.auth_env)
    assert record["derivation"] == {"outcome": direct.outcome.value, "detail": direct.detail}
    if direct.provider is not None:
        assert record["provider"] == direct.provider


CONTRACT_FIELDS = {
    "workspace_id",
    "mode",
    "source",
    "workspace_override",
    "org_default",
    "provider",
    "derivation",
    "trace",
    "error",
    "deployment",
}


@invariant
@given(inputs=resolution_inputs, registry=registries)
def test_record_carries_every_contract_field(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    assert set(resolve(inputs, registry).to_dict()) >= CONTRACT_FIELDS


@invariant
@given(inputs=resolution_inputs, registry=registries)
def test_wire_shape_is_plain_json(
    inputs: ResolutionInput, registry: CompiledRegistry | None
) -> None:
    record = resolve(inputs, registry).to_dict()
    assert json.loads(json.dumps(record)) == record


# --- normalization rules, stated as properties -----------------------------------------------


@invariant
@given(
    word=mode_word.flatmap(cased),
    before=st.text(alphabet=st.sampled_from(ASCII_WHITE_SPACE)),
    after=st.text(alphabet=st.sampled_from(ASCII_WHITE_SPACE)),
)
def test_org_default_ignores_surrounding_ascii_white_space_and_case(
    word: str, before: str, after: str
) -> None:
    inputs = ResolutionInput(workspace_id="w", org_default=before + word + after)
    record = resolve(inputs, BUILT_IN).to_dict()
    assert (record["mode"], record["source"]) == (word.lower(), "org_default")


@invariant
@given(
    stored=mode_like_text.filter(lambda text: text not in MODE_VALUES),
    registry=registries,
)
def test_an_override_that_is_not_exactly_a_mode_never_decides(
    stored: str, registry: CompiledRegistry | None
) -> None:
    inputs = ResolutionInput(workspace_id="w", override=stored, runtime="codex", model="gpt-5.5")
    record = resolve(inputs, registry).to_dict()
    assert record["source"] != "workspace_override"
    assert record["workspace_override"] is None
