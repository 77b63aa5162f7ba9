"""Fail closed at scale, in the pure core: every spec §2 invariant over the whole decision
input space, and a failed read under every valid policy.

Hypothesis draws every decision input — garbled, Unicode, white-space-padded and homoglyph
override and org-default text, registry runtimes and model ids mixed with random text, random
secret-name sets, proxy yes/no, the registry (built-in or unavailable) and the policy (the
contract's or any other valid one): the hostile strategies of ``tests/strategies.py`` — and
checks every §2 invariant on the decision (``tests/reliability/decision_checks.py``), including
that nothing inside it does I/O (a ``sys.addaudithook`` watch, with its control), and that the
same inputs under a registry and a policy compiled again decide the same.

The same invariants under real store faults: ``test_fail_closed_store_faults.py``.

Bounded in CI (``PURE_EXAMPLES``). The long run:

    LLMBILLING_LONG_RUN=1 .venv/bin/pytest -s -p no:xdist \\
        tests/reliability/test_fail_closed_decisions.py

runs 100,000 examples and prints the example counts and times.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from tests.reliability.decision_checks import IO_WATCH, SOURCES, assert_section_2_invariants
from tests.reliability.long_run import LONG_RUN, report
from tests.strategies import (
    ALL_POLICIES,
    BUILT_IN,
    BUILT_IN_TWIN,
    CONTRACT,
    PolicyTriple,
    hostile_resolution_inputs,
    policies,
    registry_pairs,
)

from llmbilling.core.decision import BillingDecision, OverrideReadFailure, ResolutionInput
from llmbilling.core.policy import CompiledPolicy
from llmbilling.core.registry import CompiledRegistry
from llmbilling.core.resolve import resolve_billing_mode

PURE_EXAMPLES = 100_000 if LONG_RUN else 400


def test_the_io_watch_sees_io_so_its_silence_means_something(tmp_path: Path) -> None:
    """The control of the no-I/O check: a call that opens a file is seen."""

    def opens_a_file() -> BillingDecision:
        (tmp_path / "touched").write_text("x")
        return resolve_billing_mode(ResolutionInput(), BUILT_IN)

    IO_WATCH.watch(opens_a_file)
    assert "open" in IO_WATCH.seen


@dataclass
class Tally:
    examples: int = 0
    by_source: dict[str, int] = field(default_factory=dict)

    def count(self, decision: BillingDecision) -> None:
        self.examples += 1
        key = f"{decision.mode.value}/{decision.source.value}"
        self.by_source[key] = self.by_source.get(key, 0) + 1


PURE_TALLY = Tally()


@settings(
    max_examples=PURE_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    inputs=hostile_resolution_inputs,
    registry_pair=registry_pairs,
    policy_triple=policies,
)
# A vendor model with its own key: ``derived_provider`` decides only about one draw in fifty, so
# 400 draws miss it about one run in ten, and under CI (derandomized, and Hypothesis mixes in
# constants from every loaded module) an unrelated edit anywhere could turn that into a standing
# failure of the reach check below. This example keeps the rung's invariants always exercised.
@example(
    inputs=ResolutionInput(
        workspace_id="w",
        runtime="codex",
        model="gpt-5.5",
        auth_env=frozenset({"OPENAI_API_KEY"}),
        proxy_configured=True,
    ),
    registry_pair=(BUILT_IN, BUILT_IN_TWIN),
    policy_triple=CONTRACT,
)
def _every_invariant_holds(
    inputs: ResolutionInput,
    registry_pair: tuple[CompiledRegistry | None, CompiledRegistry | None],
    policy_triple: PolicyTriple,
) -> None:
    registry, twin_registry = registry_pair
    _, policy, twin_policy = policy_triple
    decision = IO_WATCH.watch(lambda: resolve_billing_mode(inputs, registry, policy))
    assert IO_WATCH.seen == [], "a decision did I/O"
    assert_section_2_invariants(inputs, registry, policy, decision)

    # Pure: the same inputs (as a new object, under a registry and a policy compiled again)
    # give the same decision, with no I/O on the way either.
    same = replace(inputs, auth_env=frozenset(set(inputs.auth_env)))
    again = IO_WATCH.watch(lambda: resolve_billing_mode(same, twin_registry, twin_policy))
    assert IO_WATCH.seen == [], "a decision did I/O"
    assert again.to_dict() == decision.to_dict()
    assert resolve_billing_mode(inputs, registry, policy) == decision
    PURE_TALLY.count(decision)


def test_every_section_2_invariant_holds_over_the_whole_decision_input_space() -> None:
    PURE_TALLY.examples = 0
    PURE_TALLY.by_source.clear()
    started = time.perf_counter()

    _every_invariant_holds()

    elapsed = time.perf_counter() - started
    assert PURE_TALLY.examples >= PURE_EXAMPLES
    # The draws reach every source, so no rung's invariants went untested.
    reached = {key.split("/")[1] for key in PURE_TALLY.by_source}
    assert reached == SOURCES
    report(
        f"pure fail-closed property: {PURE_TALLY.examples:,} examples, 0 violations,"
        f" {elapsed:.1f} s; mode/source: {dict(sorted(PURE_TALLY.by_source.items()))}"
    )


@pytest.mark.parametrize(
    "policy",
    [compiled for _, compiled, _ in ALL_POLICIES],
    ids=[
        "-".join(document["rungs"][:-1]) + ("+own_key" if own else "")
        for document, _, _ in ALL_POLICIES
        for own in [document["options"]["own_key_wins_over_org_default"]]
    ],
)
def test_a_failed_read_fails_closed_under_every_policy(policy: CompiledPolicy) -> None:
    """Whatever the policy's order (or whether it has an override rung at all), an unreadable
    store decides the deployment default with the error beside it: inputs that would decide
    byok from the org default or a vendor model are not consulted."""
    inputs = ResolutionInput(
        workspace_id=str(uuid.uuid4()),
        override=OverrideReadFailure("OperationalError: connection refused"),
        org_default="byok",
        runtime="codex",
        model="gpt-5.5",
        auth_env=frozenset({"OPENAI_API_KEY"}),
        proxy_configured=True,
    )
    record = resolve_billing_mode(inputs, BUILT_IN, policy).to_dict()
    assert (record["mode"], record["source"]) == ("platform_managed", "constant_fallback")
    assert record["error"]["code"] == "OVERRIDE_READ_FAILED"
